"""PagerDuty Events v2: trigger then resolve with one dedup_key; what is not paged is not sent."""

from __future__ import annotations

import pytest
from tests.channels.conftest import LOOPBACK, run_alert

from dockyard.alert import AlertKind, Severity
from dockyard.channels import ChannelError, pagerduty

KEY = "R0uTiNgKeY0123456789abcdefCANARY"


def test_trigger_payload_golden_fields() -> None:
    alert = run_alert()
    event = pagerduty.payload(alert, KEY)
    assert event["routing_key"] == KEY and event["event_action"] == "trigger"
    assert event["dedup_key"] == alert.dedup_key
    p = event["payload"]
    assert p["summary"] == "nightly failed in prod"
    assert p["severity"] == "critical"
    assert p["source"] == "job:nightly@prod"
    assert (p["component"], p["group"], p["class"]) == ("nightly", "prod", "run")
    assert p["timestamp"].endswith("+00:00")
    details = p["custom_details"]
    assert details["Job"] == "nightly" and details["text"] == "2 nodes failed. Attempt 3 of 3."
    assert details["items"][0]["name"] == "orders" and details["items_total"] == 5
    assert event["links"] == [{"href": "https://dockyard.example.com/runs/42", "text": "View run"}]


@pytest.mark.parametrize("severity, expected", [(Severity.WARNING, "warning"), (Severity.CRITICAL, "critical")])
def test_severity_mapping(severity, expected) -> None:
    assert pagerduty.payload(run_alert(severity=severity), KEY)["payload"]["severity"] == expected


def test_summary_is_bounded() -> None:
    event = pagerduty.payload(run_alert(title="x" * 5000), KEY)
    assert len(event["payload"]["summary"]) == 1024


def test_resolve_follows_trigger_with_the_same_dedup_key(receiver) -> None:
    failed = run_alert()
    fixed = run_alert(key="run:43:resolved", event="resolved", severity=Severity.OK, resolves=True, run_id=43)
    url = receiver.url("/v2/enqueue")
    receiver.answer(202, '{"status":"success","message":"Event processed"}')
    receiver.answer(202, '{"status":"success","message":"Event processed"}')
    assert pagerduty.send(url, KEY, failed, timeout=5, allow_hosts=LOOPBACK) == "202"
    assert pagerduty.send(url, KEY, fixed, timeout=5, allow_hosts=LOOPBACK) == "202"
    trigger, resolve = (r.json for r in receiver.requests)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == failed.dedup_key
    assert resolve == {"routing_key": KEY, "event_action": "resolve", "dedup_key": failed.dedup_key}
    assert {r.path for r in receiver.requests} == {"/v2/enqueue"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"final": False, "event": "failed", "severity": Severity.WARNING, "text": "retrying in 30 s, attempt 2 of 3"},
        {"final": False, "event": "failed", "severity": Severity.CRITICAL},
        {"event": "started", "severity": Severity.INFO},
        {"event": "succeeded", "severity": Severity.OK},
        {"kind": AlertKind.DIGEST, "event": "digest", "severity": Severity.INFO, "subject": "digest:2026-12-01"},
    ],
)
def test_what_is_not_paged_is_not_sent(receiver, overrides) -> None:
    alert = run_alert(**overrides)
    assert not pagerduty.pages(alert)
    result = pagerduty.send(receiver.url("/v2/enqueue"), KEY, alert, timeout=5, allow_hosts=LOOPBACK)
    assert result == pagerduty.NOT_PAGED
    assert receiver.requests == []


def test_a_test_alert_and_freshness_errors_are_paged() -> None:
    assert pagerduty.pages(run_alert(kind=AlertKind.TEST, event="test", severity=Severity.INFO))
    assert pagerduty.pages(run_alert(kind=AlertKind.FRESHNESS, event="error", subject="source:s@prod"))


def test_the_default_events_url_is_pagerduty_s() -> None:
    assert pagerduty.EVENTS_URL == "https://events.pagerduty.com/v2/enqueue"


@pytest.mark.parametrize("status, retryable", [(400, False), (429, True), (500, True), (503, True)])
def test_errors_never_hold_the_routing_key(receiver, status, retryable) -> None:
    receiver.answer(status, f'{{"status":"invalid event","errors":["bad routing_key {KEY}"]}}')
    with pytest.raises(ChannelError) as caught:
        pagerduty.send(receiver.url("/v2/enqueue"), KEY, run_alert(), timeout=5, allow_hosts=LOOPBACK)
    assert caught.value.retryable is retryable
    assert KEY not in str(caught.value) and "***" in caught.value.message
