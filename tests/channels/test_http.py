"""One POST to a channel: statuses, timeouts, TLS to the checked address, no secret in errors."""

from __future__ import annotations

import logging
import ssl
import time

import pytest
from tests.channels.conftest import LOOPBACK, TLS_NAME
from tests.channels.receiver import Receiver

from dockyard import __version__
from dockyard.channels import ChannelError, egress, http

SECRET_PATH = "/services/T0CANARY/B0CANARY/canaryWebhookToken9f3e"


def _post(receiver: Receiver, path: str = SECRET_PATH, timeout: float = 5.0, **kwargs) -> http.Answer:
    return http.post(
        receiver.url(path),
        b'{"a":1}',
        what="slack webhook",
        headers={},
        timeout=timeout,
        allow_hosts=LOOPBACK,
        **kwargs,
    )


def test_a_success_returns_the_status_and_sends_the_user_agent(receiver: Receiver) -> None:
    receiver.answer(200, "ok")
    answer = _post(receiver)
    assert (answer.status, answer.text) == (200, "ok")
    request = receiver.requests[0]
    assert request.method == "POST" and request.path == SECRET_PATH and request.body == b'{"a":1}'
    assert request.headers["user-agent"] == f"dockyard/{__version__}"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_transient_statuses_are_retryable(receiver: Receiver, status: int) -> None:
    receiver.answer(status, "rollup_error", {"Retry-After": "7"})
    with pytest.raises(ChannelError) as caught:
        _post(receiver)
    assert caught.value.retryable
    assert f"answered {status}" in caught.value.message
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    "status, said",
    [(400, "invalid_payload"), (403, "action_prohibited"), (404, "no_team"), (410, "channel_is_archived")],
)
def test_other_client_errors_are_final(receiver: Receiver, status: int, said: str) -> None:
    receiver.answer(status, said)
    with pytest.raises(ChannelError) as caught:
        _post(receiver)
    assert not caught.value.retryable
    assert caught.value.message == f"slack webhook (127.0.0.1) answered {status}: {said}"


def test_a_hanging_receiver_times_out_within_the_timeout(receiver: Receiver) -> None:
    receiver.hang = 10
    started = time.monotonic()
    with pytest.raises(ChannelError, match="timed out") as caught:
        _post(receiver, timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert caught.value.retryable


def test_a_refused_connection_is_retryable() -> None:
    with Receiver() as r:
        url = r.url(SECRET_PATH)
    with pytest.raises(ChannelError, match="cannot connect") as caught:
        http.post(url, b"{}", what="webhook", headers={}, timeout=2, allow_hosts=LOOPBACK)
    assert caught.value.retryable
    assert "T0CANARY" not in caught.value.message


def test_no_secret_in_errors_or_logs_even_when_the_receiver_echoes_it(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    key = "R0UTINGKEYcanary1234567890abcdef"
    receiver.answer(400, f"bad request to {SECRET_PATH}?token=abc for key {key}")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ChannelError) as caught:
        _post(receiver, path=SECRET_PATH + "?token=abc", secrets=[key])
    text = str(caught.value) + caught.value.message + caplog.text
    for secret in ("T0CANARY", "canaryWebhookToken9f3e", key, "token=abc"):
        assert secret not in text
    assert "127.0.0.1" in caught.value.message


def test_https_goes_to_the_checked_address_with_the_host_s_certificate(monkeypatch, cert) -> None:
    """The request connects to the resolved address but verifies the certificate (and sends
    SNI and Host) for the URL's name."""
    monkeypatch.setattr(egress, "resolver", lambda host, port: ["127.0.0.1"] if host == TLS_NAME else [])
    client_ctx = ssl.create_default_context(cafile=str(cert.cert))
    with Receiver(tls=cert.server_context()) as r:
        answer = http.post(
            r.url("/hook", host=TLS_NAME),
            b"{}",
            what="webhook",
            headers={},
            timeout=5,
            allow_hosts=LOOPBACK,
            verify=client_ctx,
        )
        assert answer.status == 200
        assert r.requests[0].headers["host"] == f"{TLS_NAME}:{r.port}"
        # a name the certificate does not hold fails verification (no silent pinning to the IP)
        monkeypatch.setattr(egress, "resolver", lambda host, port: ["127.0.0.1"])
        with pytest.raises(ChannelError, match="cannot connect"):
            http.post(
                r.url("/hook", host="other.dockyard.test"),
                b"{}",
                what="webhook",
                headers={},
                timeout=5,
                allow_hosts=LOOPBACK,
                verify=client_ctx,
            )


def test_a_trickling_answer_is_cut_at_the_timeout(receiver: Receiver) -> None:
    """A receiver that sends its body a byte at a time cannot hold a delivery past its timeout."""
    receiver.answer(200, "x" * 100)
    receiver.trickle = 0.1
    started = time.monotonic()
    answer = _post(receiver, timeout=0.5)
    assert answer.status == 200 and len(answer.text) < 100
    assert time.monotonic() - started < 1.5


def test_ipv6_loopback_is_reached_only_when_allowed() -> None:
    with Receiver(ipv6=True) as r:
        with pytest.raises(ChannelError, match="SSRF"):
            http.post(r.url("/x"), b"{}", what="webhook", headers={}, timeout=5, allow_hosts=LOOPBACK)
        answer = http.post(r.url("/x"), b"{}", what="webhook", headers={}, timeout=5, allow_hosts=["::1/128"])
        assert answer.status == 200
        assert r.requests[0].headers["host"] == f"[::1]:{r.port}"
