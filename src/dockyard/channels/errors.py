"""The one error a channel raises: what failed (never a secret) and whether a retry may help."""

from __future__ import annotations

from dockyard.errors import DockyardError


class ChannelError(DockyardError):
    """A notification could not be delivered.

    ``retryable`` is True for what may pass on a later attempt (a 429 or 5xx answer, a timeout,
    a refused connection, a name that does not resolve), False for what will not (any other 4xx,
    an address the SSRF rule refuses, a channel without its settings). ``retry_after`` is the
    delay the receiver asked for (``Retry-After`` on a 429 or 503), in seconds, when it said one.
    The message names the channel and the host only: never a URL's path or query, a routing
    key, a password or a signing secret.
    """

    status = 502

    def __init__(self, message: str, retryable: bool, *, retry_after: float | None = None):
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)
