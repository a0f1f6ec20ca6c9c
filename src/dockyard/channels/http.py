"""One HTTP POST to a channel: through the SSRF rule, bounded in time, errors without secrets.

Every HTTP channel (Slack, Teams, PagerDuty, the generic webhook) posts through :func:`post`:

* the URL is checked and resolved by :mod:`dockyard.channels.egress`, and the request goes to
  the checked address (``Host`` and the TLS server name stay the URL's host, so certificates
  are verified against it);
* through httpx's transport, not a client: no redirect is followed (a 3xx is a failed
  delivery, not retried), no proxy is taken from the environment (the SSRF rule must judge
  the real destination), and httpx's client log line holding the full URL is never written;
  a ``User-Agent: dockyard/<version>``;
* connect, write and each read wait at most ``timeout`` seconds, and at most
  :data:`MAX_RESPONSE_BYTES` of the answer are read (within ``timeout`` in all);
* 2xx is a success; 408, 425, 429 and 5xx, timeouts and connection errors raise a retryable
  :class:`ChannelError` (with ``retry_after`` from a ``Retry-After`` in seconds); any other
  status raises a final one.

What is raised or logged names the channel and the host (``slack webhook
(hooks.slack.com)``), the status and the first characters of the receiver's answer, scrubbed
of the URL, its path and query and every secret the caller names (in their encoded forms
too, :class:`dockyard.secrets.Scrubber`).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from dockyard import __version__, text
from dockyard.channels import egress
from dockyard.channels.errors import ChannelError
from dockyard.secrets import Scrubber

log = logging.getLogger(__name__)

USER_AGENT = f"dockyard/{__version__}"
MAX_RESPONSE_BYTES = 4096
SNIPPET_CHARS = 200  # of a receiver's answer in an error message
MAX_RETRY_AFTER_S = 3600.0
RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # the first characters of the body, scrubbed


def label(what: str, url: str) -> str:
    """``slack webhook (hooks.slack.com)``: how messages name a destination."""
    return f"{what} ({egress.describe(url)})"


def scrubber(url: str, secrets: Iterable[str | None] = ()) -> Scrubber:
    """A scrubber for ``url``, its path and query and ``secrets``."""
    values: list[str] = [url]
    try:
        parts = urlsplit(url)
        values += [parts.path, parts.query, parts.path + ("?" + parts.query if parts.query else "")]
        if parts.password:
            values.append(parts.password)
    except ValueError:
        pass
    values += [s for s in secrets if s]
    return Scrubber([v for v in values if v and v not in ("/", "")])


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def _snippet(body: bytes, clean: Scrubber) -> str:
    shown = clean.scrub(body.decode("utf-8", "replace")).strip()
    shown = text.escape(shown[:SNIPPET_CHARS])
    return shown + ("…" if len(body) > SNIPPET_CHARS else "")


def _read(response: httpx.Response, deadline: float) -> bytes:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
            break
    return data[:MAX_RESPONSE_BYTES]


def _request(
    transport: httpx.HTTPTransport,
    target: egress.Target,
    address: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
) -> httpx.Response:
    pinned = httpx.URL(url).copy_with(host=address)
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    all_headers = {
        "User-Agent": USER_AGENT,
        "Host": host if target.port == default else f"{host}:{target.port}",
        "Content-Length": str(len(body)),
        **headers,
    }
    extensions: dict[str, object] = {"timeout": timeout.as_dict()}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    request = httpx.Request("POST", pinned, content=body, headers=all_headers, extensions=extensions)
    return transport.handle_request(request)


def post(
    url: str,
    body: bytes,
    *,
    what: str,
    headers: Mapping[str, str],
    timeout: float,
    allow_hosts: Sequence[str] = (),
    secrets: Iterable[str | None] = (),
    verify: ssl.SSLContext | bool = True,
) -> Answer:
    """POST ``body`` to ``url`` (see the module doc); ``what`` names the channel in messages."""
    shown = label(what, url)
    clean = scrubber(url, secrets)
    try:
        target = egress.resolve(url, allow_hosts)
    except ChannelError as exc:
        raise ChannelError(f"{shown}: {clean.scrub(exc.message)}", exc.retryable) from None
    deadline = time.monotonic() + timeout
    # the transport itself, not a Client: no redirects, no proxies from the environment, and
    # no "HTTP Request: POST <url>" log line (httpx's client logs the full URL at INFO)
    with httpx.HTTPTransport(verify=verify, trust_env=False) as transport:
        response = None
        for i, address in enumerate(target.addresses):
            try:
                response = _request(transport, target, address, url, body, headers, httpx.Timeout(timeout))
                break
            except httpx.ConnectError as exc:
                if i + 1 < len(target.addresses):
                    continue
                reason = clean.scrub(str(exc))[:SNIPPET_CHARS] or type(exc).__name__
                raise ChannelError(f"{shown}: cannot connect ({text.escape(reason)})", True) from None
            except httpx.TimeoutException:
                raise ChannelError(f"{shown}: no answer within {timeout:g} s (timed out)", True) from None
            except httpx.HTTPError as exc:
                raise ChannelError(f"{shown}: the request failed ({type(exc).__name__})", True) from None
        assert response is not None
        try:
            data = _read(response, deadline)
        except httpx.TimeoutException:
            raise ChannelError(f"{shown}: the answer did not arrive within {timeout:g} s (timed out)", True) from None
        except httpx.HTTPError as exc:
            raise ChannelError(f"{shown}: reading the answer failed ({type(exc).__name__})", True) from None
        finally:
            response.close()
    status = response.status_code
    log.debug("%s answered %s", shown, status)
    if 200 <= status < 300:
        return Answer(status, _snippet(data, clean))
    if 300 <= status < 400:
        raise ChannelError(f"{shown} answered {status}, a redirect: redirects are not followed", False)
    detail = _snippet(data, clean)
    message = f"{shown} answered {status}" + (f": {detail}" if detail else "")
    if status in RETRYABLE or status >= 500:
        raise ChannelError(message, True, retry_after=_retry_after(response))
    raise ChannelError(message, False)


def post_json(url: str, payload: object, **kwargs) -> Answer:
    """:func:`post` of ``payload`` as compact JSON."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return post(url, body, headers=headers, **kwargs)
