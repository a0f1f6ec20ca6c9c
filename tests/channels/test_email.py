"""Email: the message (text + escaped HTML, no header injection) and real SMTP delivery to
aiosmtpd on loopback (STARTTLS + AUTH, TLS from the first byte, refusals)."""

from __future__ import annotations

import email
import email.policy
import logging

import pytest
from tests.channels.conftest import SMTP_PASSWORD, SMTP_USER, run_alert

from dockyard.alert import AlertItem
from dockyard.channels import ChannelError
from dockyard.channels import email as mail

SENDER = "dockyard@example.org"
TO = ["oncall@example.org", "data@example.org"]


def _parts(msg):
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return text, html


def test_message_has_text_and_html() -> None:
    msg = mail.message(run_alert(), sender=SENDER, to=TO)
    assert msg["Subject"] == "\U0001f534 nightly failed in prod"
    assert msg["From"] == SENDER and msg["To"] == ", ".join(TO)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"].endswith("@example.org>")
    text, html = _parts(msg)
    assert "Job: nightly" in text and "- orders: error" in text
    assert '    column "amount" does not exist' in text
    assert "and 3 more nodes" in text and "View run: https://dockyard.example.com/runs/42" in text
    assert "<th align='left'>Job</th><td>nightly</td>" in html
    assert '<a href="https://dockyard.example.com/runs/42">View run</a>' in html


def test_html_is_escaped() -> None:
    evil = '<script>alert(1)</script><img src=x onerror="x">&'
    alert = run_alert(title=evil, text=evil, items=(AlertItem(evil, "error", evil),), facts=((evil, evil),))
    _, html = _parts(mail.message(alert, sender=SENDER, to=TO))
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;x&quot;&gt;&amp;" in html


def test_no_header_injection() -> None:
    alert = run_alert(title="failed\r\nBcc: victim@example.org\nX-Evil: 1")
    msg = mail.message(alert, sender=SENDER, to=TO)
    raw = msg.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert "Bcc: victim@example.org" in parsed["Subject"]


def _target(server, cert, **kwargs) -> mail.SmtpTarget:
    values = dict(host=server.host, port=server.port, cafile=str(cert.cert))
    values.update(kwargs)
    return mail.SmtpTarget(**values)


def test_starttls_and_auth_deliver(smtp_starttls, cert) -> None:
    target = _target(smtp_starttls, cert, username=SMTP_USER, password=SMTP_PASSWORD)
    assert mail.send(target, SENDER, TO, run_alert(), timeout=5) == "250 OK"
    ((sender, rcpt, content),) = smtp_starttls.mailbox.messages
    assert (sender, rcpt) == (SENDER, TO)
    assert smtp_starttls.mailbox.logins == [SMTP_USER]
    received = email.message_from_bytes(content, policy=email.policy.default)
    assert received["Subject"] == "\U0001f534 nightly failed in prod"
    assert SMTP_PASSWORD.encode() not in content


def test_a_wrong_password_is_final_and_never_shown(smtp_starttls, cert, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-password-canary-31337"
    target = _target(smtp_starttls, cert, username=SMTP_USER, password=wrong)
    with pytest.raises(ChannelError) as caught:
        mail.send(target, SENDER, TO, run_alert(), timeout=5)
    assert not caught.value.retryable and "535" in caught.value.message
    assert wrong not in str(caught.value) + caplog.text and wrong not in repr(target)
    assert smtp_starttls.mailbox.messages == []


def test_auth_is_required_by_the_server(smtp_starttls, cert) -> None:
    with pytest.raises(ChannelError, match="530") as caught:
        mail.send(_target(smtp_starttls, cert), SENDER, TO, run_alert(), timeout=5)
    assert not caught.value.retryable


def test_an_untrusted_certificate_is_refused(smtp_starttls) -> None:
    target = mail.SmtpTarget(
        host=smtp_starttls.host, port=smtp_starttls.port, username=SMTP_USER, password=SMTP_PASSWORD
    )
    with pytest.raises(ChannelError, match="certificate") as caught:
        mail.send(target, SENDER, TO, run_alert(), timeout=5)
    assert not caught.value.retryable
    assert smtp_starttls.mailbox.logins == []


def test_no_starttls_offered_means_no_delivery(smtp_plain) -> None:
    target = mail.SmtpTarget(host=smtp_plain.host, port=smtp_plain.port)
    with pytest.raises(ChannelError, match="STARTTLS") as caught:
        mail.send(target, SENDER, TO, run_alert(), timeout=5)
    assert not caught.value.retryable
    assert smtp_plain.mailbox.messages == []
    # on a trusted network, plain SMTP is a choice
    assert (
        mail.send(
            mail.SmtpTarget(host=smtp_plain.host, port=smtp_plain.port, starttls=False),
            SENDER,
            TO,
            run_alert(),
            timeout=5,
        )
        == "250 OK"
    )


def test_tls_from_the_first_byte(smtp_tls, cert) -> None:
    target = _target(smtp_tls, cert, ssl=True, starttls=False)
    assert mail.send(target, SENDER, TO, run_alert(), timeout=5) == "250 OK"
    assert len(smtp_tls.mailbox.messages) == 1


@pytest.mark.parametrize("reply, retryable", [("451 4.3.0 try again later", True), ("554 5.7.1 rejected", False)])
def test_server_refusals(smtp_tls, cert, reply, retryable) -> None:
    smtp_tls.mailbox.reject = reply
    with pytest.raises(ChannelError) as caught:
        mail.send(_target(smtp_tls, cert, ssl=True, starttls=False), SENDER, TO, run_alert(), timeout=5)
    assert caught.value.retryable is retryable and reply.split()[0] in caught.value.message


def test_a_closed_port_is_retryable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ChannelError) as caught:
        mail.send(mail.SmtpTarget(host="127.0.0.1", port=port), SENDER, TO, run_alert(), timeout=2)
    assert caught.value.retryable
