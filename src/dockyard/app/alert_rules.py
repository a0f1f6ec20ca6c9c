"""The routing and no-storm rules of alerts, as pure functions (docs/alerts.md).

:func:`decide` says, for one channel, one alert and what the channel last heard about the
alert's subject (its :class:`~dockyard.store.notifications.AlertState`), whether a delivery
is queued (``pending``), logged but not sent (``suppressed``) or not made at all, and what the
channel's state becomes:

- a *problem* (a failure, a timeout, a freshness warn or error, a monitor alert, a
  slowdown) opens the subject; the same problem again while it is open, within
  ``alerts.realert_minutes`` of the last one sent, is suppressed (a failing job that keeps
  failing re-alerts at most once per interval). A final failure after a "retrying" one is
  always sent (it is the page). PagerDuty never gets a failure that will be retried.
- a *resolve* (``alert.resolves``: a run's success, freshness back to pass, a monitor
  resolved) closes the subject; it is sent, as "resolved", only to the channels the subject
  is open for and that have ``on_resolved``. A run's success to a channel that heard of no
  failure is an ordinary success message (``on_success``/``on_warning``).
- anything else (started, cancelled, digests, tests) is sent when the flags accept it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from dockyard.alert import Alert, AlertKind, Severity
from dockyard.config.alerts import Notification
from dockyard.store.notifications import AlertState, Decision

NEUTRAL_EVENTS = frozenset({"started", "cancelled", "digest", "test"})


def is_problem(alert: Alert) -> bool:
    return not alert.resolves and alert.event not in NEUTRAL_EVENTS


def resolved_form(alert: Alert) -> Alert:
    """A run's success as the resolve of the failure a channel heard of."""
    if alert.kind != AlertKind.RUN:
        return alert
    return dataclasses.replace(
        alert, event="resolved", resolves=True, severity=Severity.OK, title=f"Resolved: {alert.title}"
    )


def decide(
    channel: Notification,
    alert: Alert,
    state: AlertState | None,
    *,
    now: datetime,
    realert_minutes: float,
) -> tuple[Decision, Alert]:
    """The decision for ``channel`` and the alert as it gets it (see the module doc)."""
    is_open = state is not None and state.open
    if alert.resolves:
        if is_open:
            status = "pending" if channel.on_resolved and channel.accepts(alert.kind, "resolved") else "suppressed"
            return Decision(status, open=False, sent=status == "pending"), resolved_form(alert)
        plain = dataclasses.replace(alert, resolves=False)
        if alert.kind == AlertKind.RUN and channel.accepts(alert.kind, alert.event):
            return Decision("pending"), plain
        return Decision(None), plain
    if not channel.accepts(alert.kind, alert.event):
        return Decision(None), alert
    if not is_problem(alert):
        return Decision("pending"), alert
    if channel.type == "pagerduty" and not alert.final:
        return Decision(None), alert  # a failure that will be retried is never paged
    if (
        is_open
        and state.last_event == alert.event
        and state.last_final
        and realert_minutes > 0
        and state.last_sent_at is not None
        and now - state.last_sent_at < timedelta(minutes=realert_minutes)
    ):
        return Decision("suppressed"), alert
    return Decision("pending", open=True, final=alert.final, sent=True), alert
