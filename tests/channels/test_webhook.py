"""The generic webhook: dbt Cloud's body, verified as dbt Cloud documents and as Standard
Webhooks specifies, by independent receiver-side code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time

import pytest
from tests.channels.conftest import LOOPBACK, run_alert

from dockyard.alert import AlertKind, Severity
from dockyard.channels import ChannelError, webhook

SECRET = "whk-signing-canary-5b1d0c7e"
WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-key-bytes!!").decode()


def dbt_cloud_valid(headers: dict[str, str], request_body: bytes, secret: str) -> bool:
    """dbt Cloud's documented verification snippet, with hmac.compare_digest."""
    auth_header = headers.get("authorization", None)
    app_secret = secret.encode("utf-8")
    signature = hmac.new(app_secret, request_body, hashlib.sha256).hexdigest()
    return auth_header is not None and hmac.compare_digest(signature, auth_header)


def standard_webhooks_valid(headers: dict[str, str], body: bytes, secret: str, tolerance: int = 300) -> bool:
    """Standard Webhooks 1.0 verification (written from the spec, not from dockyard's code)."""
    msg_id, ts, sigs = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not (msg_id and ts and sigs and ts.isdigit()) or abs(time.time() - int(ts)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(expected, sig)
        for version, _, sig in (s.partition(",") for s in sigs.split(" "))
    )


def test_run_body_is_dbt_cloud_s_shape() -> None:
    doc = json.loads(webhook.body(run_alert(), account_id=1, webhook_id="wsu_ops", webhook_name="ops"))
    assert set(doc) == {
        "accountId",
        "webhooksID",
        "eventId",
        "timestamp",
        "eventType",
        "webhookName",
        "data",
        "dockyard",
    }
    assert (doc["accountId"], doc["webhooksID"], doc["webhookName"]) == (1, "wsu_ops", "ops")
    assert doc["eventType"] == "job.run.errored" and doc["eventId"].startswith("wev_")
    assert doc["timestamp"].endswith("Z")
    data = doc["data"]
    assert data["jobId"] == "7" and data["jobName"] == "nightly" and data["runId"] == "42"
    assert data["environmentName"] == "prod" and data["projectId"] == "1"
    assert (data["runStatus"], data["runStatusCode"]) == ("Errored", 20)
    assert data["runStatusMessage"] == "2 nodes failed" and data["runReason"] == "Scheduled"
    assert data["runStartedAt"] == "2026-12-01T02:00:00Z" and data["runErroredAt"] == "2026-12-01T02:01:02Z"
    assert doc["dockyard"]["subject"] == "job:nightly@prod" and doc["dockyard"]["final"] is True


@pytest.mark.parametrize(
    "event, status, event_type, run_status, code, finished_key",
    [
        ("started", "running", "job.run.started", "Running", 3, None),
        ("succeeded", "success", "job.run.completed", "Success", 10, "runFinishedAt"),
        ("warning", "success", "job.run.completed", "Success", 10, "runFinishedAt"),
        ("resolved", "success", "job.run.completed", "Success", 10, "runFinishedAt"),
        ("cancelled", "cancelled", "job.run.completed", "Cancelled", 30, "runFinishedAt"),
        ("timed_out", "error", "job.run.errored", "Errored", 20, "runErroredAt"),
    ],
)
def test_event_types(event, status, event_type, run_status, code, finished_key) -> None:
    alert = run_alert(event=event, run={**run_alert().run, "status": status})
    doc = json.loads(webhook.body(alert, account_id=3, webhook_id="w"))
    assert doc["eventType"] == event_type
    assert (doc["data"]["runStatus"], doc["data"]["runStatusCode"]) == (run_status, code)
    if finished_key:
        assert doc["data"][finished_key] == "2026-12-01T02:01:02Z"
    else:
        assert "runFinishedAt" not in doc["data"] and "runErroredAt" not in doc["data"]


def test_other_kinds_use_dockyard_s_documented_shape() -> None:
    alert = run_alert(kind=AlertKind.FRESHNESS, event="warn", subject="source:source.shop.raw.orders@prod", run=None)
    doc = json.loads(webhook.body(alert, account_id=1, webhook_id="w"))
    assert doc["eventType"] == "dockyard.freshness.warn"
    assert doc["data"]["subject"] == "source:source.shop.raw.orders@prod" and doc["data"]["kind"] == "freshness"
    assert doc["data"]["items"][0]["name"] == "orders"


def test_the_event_id_is_stable_across_attempts() -> None:
    alert = run_alert()
    assert webhook.event_id(alert, "w") == webhook.event_id(alert, "w") != webhook.event_id(alert, "v")
    assert webhook.event_id(run_alert(key="other"), "w") != webhook.event_id(alert, "w")


@pytest.mark.parametrize("secret", [SECRET, WHSEC])
def test_a_delivery_verifies_with_both_algorithms(receiver, secret) -> None:
    assert (
        webhook.send(receiver.url("/hook"), secret, run_alert(), account_id=1, timeout=5, allow_hosts=LOOPBACK) == "200"
    )
    request = receiver.requests[0]
    assert dbt_cloud_valid(request.headers, request.body, secret)
    assert standard_webhooks_valid(request.headers, request.body, secret)
    assert request.headers["webhook-id"] == json.loads(request.body)["eventId"]
    assert request.headers["webhook-signature"].startswith("v1,")
    wrong = secret[:-6] + "AAAA=="
    assert not dbt_cloud_valid(request.headers, request.body, wrong)
    assert not standard_webhooks_valid(request.headers, request.body, wrong)


def test_standard_webhooks_golden_vector() -> None:
    """The example of the Standard Webhooks spec's reference libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    ts = 1614265330
    body = b'{"test": 2432232314}'
    assert webhook.signature(msg_id, ts, body, secret) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_mutated_deliveries_are_rejected(receiver) -> None:
    """300 random single-byte mutations of the body or of a signature header: 0 accepted by
    the scheme they touch."""
    webhook.send(receiver.url("/hook"), SECRET, run_alert(), account_id=1, timeout=5, allow_hosts=LOOPBACK)
    request = receiver.requests[0]
    rng = random.Random(10)
    accepted = 0
    for _ in range(300):
        body = bytearray(request.body)
        headers = dict(request.headers)
        name = rng.choice(["body", "authorization", "webhook-id", "webhook-timestamp", "webhook-signature"])
        if name == "body":
            i = rng.randrange(len(body))
            body[i] = (body[i] + rng.randrange(1, 256)) % 256
        else:
            value = headers[name]
            i = rng.randrange(len(value))
            new = chr(33 + (ord(value[i]) - 33 + rng.randrange(1, 94)) % 94)
            headers[name] = value[:i] + new + value[i + 1 :]
        raw = bytes(body)
        if name in ("body", "authorization"):
            accepted += dbt_cloud_valid(headers, raw, SECRET)
        if name != "authorization":
            accepted += standard_webhooks_valid(headers, raw, SECRET)
    assert accepted == 0


def test_without_a_secret_the_body_is_not_signed(receiver) -> None:
    webhook.send(receiver.url("/hook"), None, run_alert(), account_id=1, timeout=5, allow_hosts=LOOPBACK)
    headers = receiver.requests[0].headers
    assert "authorization" not in headers and "webhook-signature" not in headers and "webhook-id" in headers


def test_errors_hold_neither_the_secret_nor_the_path(receiver) -> None:
    receiver.answer(500, f"signature check with {SECRET} failed at /hook/tok-canary-991")
    with pytest.raises(ChannelError) as caught:
        webhook.send(
            receiver.url("/hook/tok-canary-991"), SECRET, run_alert(), account_id=1, timeout=5, allow_hosts=LOOPBACK
        )
    assert caught.value.retryable
    assert SECRET not in caught.value.message and "tok-canary-991" not in caught.value.message


def test_resolve_alerts_are_completed_runs() -> None:
    alert = run_alert(
        event="resolved", severity=Severity.OK, resolves=True, run={**run_alert().run, "status": "success"}
    )
    assert json.loads(webhook.body(alert, account_id=1, webhook_id="w"))["eventType"] == "job.run.completed"


def test_the_documented_receiver_snippet_verifies_a_delivery(receiver) -> None:
    """docs/alerts.md's verification code, run against a real delivery."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    code = next(block for block in doc.split("```python\n")[1:] if "def valid_standard_webhooks" in block)
    namespace: dict = {}
    exec(code.split("```", 1)[0], namespace)
    for secret in (SECRET, WHSEC):
        receiver.requests.clear()
        webhook.send(receiver.url("/hook"), secret, run_alert(), account_id=1, timeout=5, allow_hosts=LOOPBACK)
        request = receiver.requests[0]
        assert namespace["valid_dbt_cloud"](request.headers, request.body, secret)
        assert namespace["valid_standard_webhooks"](request.headers, request.body, secret)
        assert not namespace["valid_standard_webhooks"](request.headers, request.body + b" ", secret)
        assert not namespace["valid_dbt_cloud"](request.headers, request.body + b" ", secret)


def test_a_rotation_signs_with_both_secrets(receiver) -> None:
    old, new = "old-signing-secret-1111", "new-signing-secret-2222"
    webhook.send(receiver.url("/hook"), f"{new}\n{old}", run_alert(), account_id=1, timeout=5, allow_hosts=LOOPBACK)
    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert standard_webhooks_valid(request.headers, request.body, new)
    assert standard_webhooks_valid(request.headers, request.body, old)
    assert dbt_cloud_valid(request.headers, request.body, new)
    assert not dbt_cloud_valid(request.headers, request.body, old)
