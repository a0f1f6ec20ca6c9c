"""Notification channels: Slack, Microsoft Teams, email, PagerDuty, signed webhooks (docs/alerts.md).

One module per channel, each with a pure render (``slack.payload``, ``msteams.payload``,
``pagerduty.payload``, ``webhook.body``, ``email.message``) and a ``send`` that makes one
delivery attempt: it returns a short result ("200", "202", "250 OK") or raises
:class:`ChannelError` (``retryable`` or not). HTTP channels go through
:mod:`dockyard.channels.http` and the SSRF rule of :mod:`dockyard.channels.egress`.

:func:`send` is what :mod:`dockyard.app.alerts` calls: it picks the channel by the
notification's ``type``, resolves its secrets through the caller's ``resolve_secret`` and
makes the attempt. Retries, backoff and the delivery log are the caller's; a channel keeps
no state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dockyard.alert import Alert
from dockyard.channels import email, msteams, pagerduty, slack, webhook
from dockyard.channels.errors import ChannelError
from dockyard.errors import DockyardError

__all__ = ["ChannelError", "send", "smtp_target"]

DEFAULT_TIMEOUT_S = 10.0


def _secret(resolve: Callable[[str], str], value: str | None, field: str, kind: str) -> str:
    if not value:
        raise ChannelError(f"the {kind} notification has no '{field}'", False)
    try:
        resolved = resolve(value)
    except DockyardError as exc:
        hint = f": {exc.hint}" if exc.hint else ""
        raise ChannelError(f"the {kind} notification's '{field}' cannot be read: {exc.what}{hint}", False) from None
    except Exception as exc:  # a resolver's own failure: its text may hold the value
        raise ChannelError(
            f"the {kind} notification's '{field}' cannot be read ({type(exc).__name__})", False
        ) from None
    if not resolved or not str(resolved).strip():
        raise ChannelError(f"the {kind} notification's '{field}' is empty", False)
    return str(resolved).strip()


def smtp_target(smtp: Any, resolve_secret: Callable[[str], str]) -> email.SmtpTarget:
    """The :class:`email.SmtpTarget` of a ``config.alerts.SmtpConfig`` (its password resolved)."""
    password = getattr(smtp, "password", None)
    return email.SmtpTarget(
        host=smtp.host,
        port=getattr(smtp, "port", 587),
        starttls=getattr(smtp, "starttls", True),
        ssl=getattr(smtp, "ssl", False),
        username=getattr(smtp, "username", None),
        password=_secret(resolve_secret, password, "smtp.password", "email") if password else None,
        cafile=getattr(smtp, "cafile", None),
        verify=getattr(smtp, "verify", True),
    )


def send(
    channel: Any,
    alert: Alert,
    *,
    resolve_secret: Callable[[str], str],
    account_id: int = 1,
    timeout: float = DEFAULT_TIMEOUT_S,
    allow_hosts: Sequence[str] = (),
    smtp_default: Any = None,
    name: str | None = None,
) -> str:
    """One delivery attempt of ``alert`` to ``channel`` (a ``config.alerts.Notification``).

    ``resolve_secret`` turns a secret reference (or a literal) into its value;
    ``smtp_default`` is ``alerts.smtp``, for an email channel without its own ``smtp``;
    ``name`` is the channel's name (the generic webhook's ``webhooksID``/``webhookName``).
    Returns the short result of :func:`slack.send` and the others; raises ChannelError.
    """
    kind = channel.type
    if kind == "slack":
        url = _secret(resolve_secret, channel.webhook_url, "webhook_url", kind)
        return slack.send(url, alert, timeout=timeout, allow_hosts=allow_hosts)
    if kind == "msteams":
        url = _secret(resolve_secret, channel.webhook_url, "webhook_url", kind)
        return msteams.send(url, alert, timeout=timeout, allow_hosts=allow_hosts)
    if kind == "pagerduty":
        if not pagerduty.pages(alert):
            return pagerduty.NOT_PAGED
        key = _secret(resolve_secret, channel.integration_key, "integration_key", kind)
        events_url = getattr(channel, "events_url", None)
        if events_url:
            events_url = _secret(resolve_secret, events_url, "events_url", kind)
        return pagerduty.send(events_url, key, alert, timeout=timeout, allow_hosts=allow_hosts)
    if kind == "webhook":
        url = _secret(resolve_secret, channel.url, "url", kind)
        raw_secret = getattr(channel, "secret", None)
        secret = _secret(resolve_secret, raw_secret, "secret", kind) if raw_secret else None
        webhook_id = name or getattr(channel, "name", None) or "dockyard"
        return webhook.send(
            url,
            secret,
            alert,
            account_id=account_id,
            timeout=timeout,
            allow_hosts=allow_hosts,
            webhook_id=webhook_id,
            webhook_name=webhook_id,
        )
    if kind == "email":
        smtp = getattr(channel, "smtp", None) or smtp_default
        if smtp is None:
            raise ChannelError(
                "the email notification has no SMTP server: set alerts.smtp or the notification's smtp", False
            )
        target = smtp_target(smtp, resolve_secret)
        sender = getattr(smtp, "sender", None) or email.default_sender()
        return email.send(target, sender, list(channel.email_addresses or ()), alert, timeout=timeout)
    raise ChannelError(f"unknown notification type {kind!r}", False)
