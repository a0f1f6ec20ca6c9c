"""Email: a text and HTML message through SMTP (STARTTLS or TLS, AUTH when a user is set).

:func:`message` builds a ``multipart/alternative`` message: the subject is the severity's
mark and the title (control characters, so also line breaks, become spaces: no header can be
injected), the text part lists the facts, the items with the first lines of their messages
and the link, the HTML part the same with every value HTML-escaped and the severity's colour
as a bar. ``Auto-Submitted: auto-generated`` keeps auto-responders quiet.

:func:`send` connects to :class:`SmtpTarget`: ``ssl`` (TLS from the first byte, port 465) or
plain SMTP upgraded with ``STARTTLS`` when ``starttls`` (the default; a server that does not
offer it is refused, credentials never travel in the clear), with the default certificate
checks (``cafile`` adds a CA, for a relay with its own; ``verify=False`` turns the checks
off, for tests only). It logs in only when ``username`` is set. The SMTP host is operator
configuration and is not subject to the SSRF rule of HTTP channels.

A 4xx answer, a timeout or a lost connection is retryable; a 5xx answer (an unknown
recipient, a refused login) is final. Nothing raised holds the password.
"""

from __future__ import annotations

import html
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from dockyard.alert import Alert, Severity
from dockyard.channels import style
from dockyard.channels.errors import ChannelError
from dockyard.secrets import Scrubber
from dockyard.text import CONTROL

MAX_SUBJECT_CHARS = 200


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to send: the password is already resolved by the caller."""

    host: str
    port: int = 587
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    cafile: str | None = None  # an extra CA bundle (a relay with its own CA; tests' self-signed cert)
    verify: bool = True  # False: no certificate checks (tests only)

    def __repr__(self) -> str:  # never the password
        return f"SmtpTarget(host={self.host!r}, port={self.port}, starttls={self.starttls}, ssl={self.ssl})"


def _oneline(value: str) -> str:
    return " ".join(CONTROL.sub(" ", value).split())


def subject(alert: Alert) -> str:
    return style.clip(_oneline(f"{style.mark(alert)} {alert.title}"), MAX_SUBJECT_CHARS)


def _text(alert: Alert) -> str:
    lines = [alert.title, ""]
    if alert.text:
        lines += [alert.text, ""]
    lines += [f"{name}: {value}" for name, value in alert.facts]
    for item in alert.items:
        lines += ["", f"- {item.name}: {item.status}"]
        if item.message:
            lines += ["    " + line for line in item.message.splitlines()]
    more = style.more(alert)
    if more:
        lines += ["", more]
    url = style.link(alert)
    if url:
        lines += ["", f"{style.link_text(alert)}: {url}"]
    return "\n".join(lines).strip() + "\n"


def _html(alert: Alert) -> str:
    e = html.escape
    colour = style.COLOUR[Severity.OK if alert.resolves else alert.severity]
    parts = [
        '<!DOCTYPE html><html><body style="font-family: sans-serif">',
        f'<div style="border-left: 6px solid {colour}; padding-left: 12px">',
        f"<h2>{e(style.mark(alert))} {e(alert.title)}</h2>",
    ]
    if alert.text:
        parts.append(f"<p>{e(alert.text)}</p>")
    if alert.facts:
        rows = "".join(f"<tr><th align='left'>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in alert.facts)
        parts.append(f"<table cellpadding='4'>{rows}</table>")
    if alert.items:
        parts.append("<ul>")
        for item in alert.items:
            parts.append(f"<li><b>{e(item.name)}</b> {e(item.status)}")
            if item.message:
                parts.append(f"<pre style='white-space: pre-wrap'>{e(item.message)}</pre>")
            parts.append("</li>")
        parts.append("</ul>")
    more = style.more(alert)
    if more:
        parts.append(f"<p>{e(more)}</p>")
    url = style.link(alert)
    if url:
        parts.append(f'<p><a href="{e(url, quote=True)}">{e(style.link_text(alert))}</a></p>')
    parts.append("</div></body></html>")
    return "\n".join(parts)


def message(alert: Alert, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """The email of ``alert`` from ``sender`` to ``to`` (see the module doc)."""
    alert = style.cleaned(alert)
    msg = EmailMessage()
    msg["Subject"] = subject(alert)
    msg["From"] = _oneline(sender)
    msg["To"] = ", ".join(_oneline(a) for a in to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(_oneline(sender))[1].rpartition("@")[2]
    msg["Message-ID"] = make_msgid("dockyard", domain=re.sub(r"[^A-Za-z0-9.-]", "", domain) or "dockyard.invalid")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(_text(alert))
    msg.add_alternative(_html(alert), subtype="html")
    return msg


def default_sender() -> str:
    return f"dockyard@{socket.gethostname() or 'localhost'}"


def _context(target: SmtpTarget) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=target.cafile)
    if not target.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _failed(shown: str, exc: Exception, clean: Scrubber) -> ChannelError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return ChannelError(
            f"{shown}: every recipient was refused ({', '.join(map(str, codes))})", all(400 <= c < 500 for c in codes)
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        said = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        said = clean.scrub(_oneline(said))[:200]
        return ChannelError(f"{shown} answered {exc.smtp_code}: {said}", 400 <= exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelError(f"{shown}: {clean.scrub(str(exc))[:200]}", False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ChannelError(f"{shown}: the server's certificate is not trusted ({exc.verify_message})", False)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return ChannelError(f"{shown}: timed out", True)
    return ChannelError(f"{shown}: {type(exc).__name__} ({clean.scrub(_oneline(str(exc)))[:200]})", True)


def send(smtp: SmtpTarget, sender: str, to: Sequence[str], alert: Alert, *, timeout: float) -> str:
    """Send the email of ``alert``; returns the server's answer ("250 OK")."""
    shown = f"smtp server ({smtp.host}:{smtp.port})"
    clean = Scrubber([smtp.password] if smtp.password else [])
    if not to:
        raise ChannelError(f"{shown}: the email notification has no email_addresses", False)
    msg = message(alert, sender=sender, to=to)
    client: smtplib.SMTP | None = None
    try:
        context = _context(smtp)
        if smtp.ssl:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        client.ehlo()
        if smtp.starttls and not smtp.ssl:
            if not client.has_extn("starttls"):
                raise ChannelError(
                    f"{shown} does not offer STARTTLS (set starttls: false only on a trusted network)", False
                )
            client.starttls(context=context)
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        refused = client.send_message(msg)
    except ChannelError:
        raise
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise _failed(shown, exc, clean) from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    if refused:
        return f"250 OK ({len(refused)} of {len(to)} recipients refused)"
    return "250 OK"
