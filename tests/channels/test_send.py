"""channels.send: the dispatcher ALERTS calls, with real config models and secret references;
no secret in any error or log record, whatever the channel."""

from __future__ import annotations

import logging

import pytest
from tests.channels.conftest import LOOPBACK, SMTP_PASSWORD, SMTP_USER, run_alert

from dockyard.alert import AlertKind, Severity
from dockyard.channels import ChannelError, send
from dockyard.config.alerts import Notification, SmtpConfig

CANARY = {
    "SLACK_URL_PATH": "/services/TCANARY1/BCANARY2/slackCanaryToken77",
    "TEAMS_URL_PATH": "/workflows/teamsCanaryWorkflow88/triggers/manual/paths/invoke?sig=teamsSigCanary99",
    "PD_KEY": "pdRoutingKeyCanary0123456789ab",
    "HOOK_PATH": "/hooks/genericCanaryPath55",
    "HOOK_SECRET": "webhookSigningCanary66",
}


def resolver(env: dict[str, str]):
    def resolve(value: str) -> str:
        if value.startswith("env:"):
            return env[value[4:]]
        return value

    return resolve


@pytest.fixture
def env(receiver) -> dict[str, str]:
    return {
        "SLACK_URL": receiver.url(CANARY["SLACK_URL_PATH"]),
        "TEAMS_URL": receiver.url(CANARY["TEAMS_URL_PATH"]),
        "PD_URL": receiver.url("/v2/enqueue"),
        "PD_KEY": CANARY["PD_KEY"],
        "HOOK_URL": receiver.url(CANARY["HOOK_PATH"]),
        "HOOK_SECRET": CANARY["HOOK_SECRET"],
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }


OWN = {  # the secrets each channel knows (and must keep out of what it raises)
    "slack": ["SLACK_URL_PATH"],
    "msteams": ["TEAMS_URL_PATH"],
    "pagerduty": ["PD_KEY"],
    "webhook": ["HOOK_PATH", "HOOK_SECRET"],
}
CHANNELS = {
    "slack": dict(type="slack", webhook_url="env:SLACK_URL"),
    "msteams": dict(type="msteams", webhook_url="env:TEAMS_URL"),
    "pagerduty": dict(type="pagerduty", integration_key="env:PD_KEY", events_url="env:PD_URL"),
    "webhook": dict(type="webhook", name="ops-hook", url="env:HOOK_URL", secret="env:HOOK_SECRET"),
}


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_each_http_channel_is_sent_through_the_dispatcher(receiver, env, kind, caplog) -> None:
    all_debug(caplog)
    channel = Notification(**CHANNELS[kind])
    receiver.answer(202 if kind in ("pagerduty", "msteams") else 200, "ok")
    result = send(channel, run_alert(), resolve_secret=resolver(env), account_id=9, timeout=5, allow_hosts=LOOPBACK)
    assert result in ("200", "202")
    (request,) = receiver.requests
    if kind == "pagerduty":
        assert request.json["routing_key"] == CANARY["PD_KEY"]
    if kind == "webhook":
        assert request.json["accountId"] == 9 and request.json["webhooksID"] == "ops-hook"
        assert request.headers["authorization"]
    assert_not_logged([CANARY[k] for k in OWN[kind]], caplog.text)


def all_debug(caplog) -> None:
    """Every logger at DEBUG, httpx's and httpcore's included (whatever else set them)."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection"):
        caplog.set_level(logging.DEBUG, logger=name)


def assert_not_logged(values: list[str], text: str) -> None:
    for value in values:
        for part in value.strip("/").replace("?", "/").split("/"):
            if len(part) >= 12:
                assert part not in text, part


@pytest.mark.parametrize("kind", sorted(CHANNELS))
@pytest.mark.parametrize("status", [400, 500])
def test_no_secret_in_errors_or_logs(receiver, env, kind, status, caplog) -> None:
    """The receiver echoes the whole request (path, query, body) in its error answer."""
    all_debug(caplog)
    channel = Notification(**CHANNELS[kind])
    own = [CANARY[k] for k in OWN[kind]]
    receiver.answer(status, " ".join(own))
    with pytest.raises(ChannelError) as caught:
        send(channel, run_alert(), resolve_secret=resolver(env), timeout=5, allow_hosts=LOOPBACK)
    assert caught.value.retryable is (status == 500)
    assert_not_logged(own, f"{caught.value} {caught.value.message!r} {caught.value.what} {caplog.text}")


def test_refused_by_the_ssrf_rule_without_allow_hosts(receiver, env) -> None:
    with pytest.raises(ChannelError, match="SSRF"):
        send(Notification(**CHANNELS["slack"]), run_alert(), resolve_secret=resolver(env), timeout=5)
    assert receiver.requests == []


def test_pagerduty_skips_what_it_does_not_page_before_reading_the_key(receiver) -> None:
    channel = Notification(type="pagerduty", integration_key="env:MISSING")
    alert = run_alert(final=False, severity=Severity.WARNING)
    assert send(channel, alert, resolve_secret=resolver({}), timeout=5, allow_hosts=LOOPBACK).startswith("not sent")


def test_an_unreadable_secret_is_a_final_error_without_the_value() -> None:
    def failing(value: str) -> str:
        raise RuntimeError(f"cannot read {value} = hooks.slack.com/services/SECRET")

    with pytest.raises(ChannelError, match="webhook_url") as caught:
        send(Notification(type="slack", webhook_url="env:X"), run_alert(), resolve_secret=failing, timeout=5)
    assert not caught.value.retryable and "SECRET" not in caught.value.message


def test_email_uses_the_channel_s_smtp_or_the_default(smtp_starttls, cert, env) -> None:
    smtp = SmtpConfig(
        host=smtp_starttls.host,
        port=smtp_starttls.port,
        username=SMTP_USER,
        password="env:SMTP_PASSWORD",
        sender="alerts@example.org",
    )
    smtp_with_ca = type("Smtp", (), {**smtp.model_dump(), "cafile": str(cert.cert)})()
    channel = Notification(type="email", email_addresses=["a@example.org"])
    alert = run_alert(kind=AlertKind.TEST, event="test", severity=Severity.INFO)
    result = send(channel, alert, resolve_secret=resolver(env), timeout=5, smtp_default=smtp_with_ca)
    assert result == "250 OK"
    ((sender, rcpt, _),) = smtp_starttls.mailbox.messages
    assert (sender, rcpt) == ("alerts@example.org", ["a@example.org"])


def test_email_without_any_smtp_server_is_a_final_error() -> None:
    with pytest.raises(ChannelError, match="alerts.smtp") as caught:
        send(Notification(type="email", email_addresses=["a@example.org"]), run_alert(), resolve_secret=str, timeout=5)
    assert not caught.value.retryable
