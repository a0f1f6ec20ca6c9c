"""PagerDuty: an Events API v2 event (``POST /v2/enqueue``).

A problem opens (or updates) an incident: ``event_action: trigger`` with ``dedup_key`` =
:attr:`Alert.dedup_key`, one key per subject (``job:<name>@<env>``...), so a job that keeps
failing updates one incident instead of opening one per run, and the resolve
(``alert.resolves``: the job succeeded again, the source is fresh again) closes it with
``event_action: resolve`` and the same key. The trigger's ``payload`` holds ``summary`` (the
title, at most 1,024 characters), ``severity`` (critical, warning, info), ``source`` (the
subject), ``timestamp``, ``component`` (the job), ``group`` (the environment), ``class`` (the
alert's kind) and ``custom_details`` (the text, the facts, the items, the retry state); the
link to the run goes in ``links``.

What is not paged (:func:`pages` is False; :func:`send` returns without a request): a failure
that will be retried (``final=False``: "retrying in 30 s, attempt 2 of 3"), the digest, and
informational alerts (run started, succeeded, and anything of severity ok or info except a
``dockyard notify test``).

PagerDuty answers 202; 400 (an invalid event or routing key) is final, 429 and 5xx are
retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from dockyard.alert import Alert, AlertKind, Severity
from dockyard.channels import http, style

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY_CHARS = 1024
MAX_FIELD_CHARS = 255  # source, component, group, class
SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
    Severity.OK: "info",
}
NOT_PAGED = "not sent: PagerDuty gets final problems and resolves only"


def pages(alert: Alert) -> bool:
    """Whether ``alert`` goes to PagerDuty at all (see the module doc)."""
    if alert.resolves:
        return True
    if alert.kind == AlertKind.DIGEST or not alert.final:
        return False
    if alert.kind == AlertKind.TEST:
        return True
    return alert.severity in (Severity.CRITICAL, Severity.WARNING)


def payload(alert: Alert, routing_key: str) -> dict[str, Any]:
    """The event for ``alert``: a trigger, or a resolve when ``alert.resolves``."""
    if alert.resolves:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.dedup_key}
    alert = style.cleaned(alert)
    details: dict[str, Any] = {"event": alert.event}
    if alert.text:
        details["text"] = alert.text
    for name, value in alert.facts:
        details[str(name)] = str(value)
    if alert.items:
        details["items"] = [
            {k: v for k, v in (("name", i.name), ("status", i.status), ("message", i.message)) if v is not None}
            for i in alert.items
        ]
        details["items_total"] = max(alert.items_total, len(alert.items))
    if alert.run_id is not None:
        details["run_id"] = alert.run_id
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "payload": {
            "summary": style.clip(alert.title, MAX_SUMMARY_CHARS),
            "severity": SEVERITY[alert.severity],
            "source": style.clip(alert.subject, MAX_FIELD_CHARS),
            "timestamp": alert.created_at.astimezone(UTC).isoformat(),
            "class": alert.kind.value,
            "custom_details": details,
        },
        "client": "dockyard",
    }
    if alert.job:
        event["payload"]["component"] = style.clip(alert.job, MAX_FIELD_CHARS)
    if alert.environment:
        event["payload"]["group"] = style.clip(alert.environment, MAX_FIELD_CHARS)
    url = style.link(alert)
    if url:
        event["links"] = [{"href": url, "text": style.link_text(alert)}]
        event["client_url"] = url
    return event


def send(
    events_url: str | None,
    routing_key: str,
    alert: Alert,
    *,
    timeout: float,
    allow_hosts: Sequence[str] = (),
) -> str:
    """Send ``alert``'s event (nothing for an alert PagerDuty does not get: :func:`pages`);
    returns the status ("202") or :data:`NOT_PAGED`."""
    if not pages(alert):
        return NOT_PAGED
    answer = http.post_json(
        events_url or EVENTS_URL,
        payload(alert, routing_key),
        what="pagerduty events",
        timeout=timeout,
        allow_hosts=allow_hosts,
        secrets=[routing_key],
    )
    return str(answer.status)
