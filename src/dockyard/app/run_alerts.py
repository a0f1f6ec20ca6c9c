"""Run alerts: the built-in event consumer that tells people about runs (docs/alerts.md).

:class:`RunAlerts` (cursor ``dockyard.alerts``) turns a run's ``run.started`` and final
events into one :class:`~dockyard.alert.Alert` each, with the job, environment, trigger,
duration, attempt, the failed nodes (their first lines, at most ``alert.MAX_ITEMS``) and a
link (``server.public_url``), and hands it to ``app.alerts.notify``. One message per run,
never per node (``node.failed`` and ``step.finished`` are not alerts).

**Retries.** A failure whose job may retry it is not final: its message says "retrying in
30 s, attempt 2 of 3" and PagerDuty is not paged. Whether a retry comes is decided the way
the process that finished the run decides it (``dockyard.retry.should_retry``); a failure
that should be retried but whose retry is not queued yet is *deferred* (kept in the store,
not blocking the cursor) and settled by the sender within :data:`DEFER_S` seconds: retrying
when the retry appears, final when it does not. A run started in the foreground is never
retried by itself: its failure is final at once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from dockyard import clock
from dockyard.alert import MAX_ITEMS, Alert, AlertItem, AlertKind, Severity, first_lines
from dockyard.app.consumer import Consumer
from dockyard.errors import DockyardError
from dockyard.events import Event, RunEvent

log = logging.getLogger("dockyard.app.alerts")
DEFER_S = 30.0  # a failure waits at most this long for its retry to be queued
RETRY_LOG_TAIL_BYTES = 65536

EVENTS = {
    RunEvent.STARTED: "started",
    RunEvent.SUCCEEDED: "succeeded",
    RunEvent.FAILED: "failed",
    RunEvent.TIMED_OUT: "timed_out",
    RunEvent.CANCELLED: "cancelled",
}
VERBS = {
    "started": "started",
    "succeeded": "succeeded",
    "warning": "succeeded with warnings",
    "failed": "failed",
    "timed_out": "timed out",
    "cancelled": "was cancelled",
}
SEVERITY = {
    "started": Severity.INFO,
    "succeeded": Severity.OK,
    "warning": Severity.WARNING,
    "failed": Severity.CRITICAL,
    "timed_out": Severity.CRITICAL,
    "cancelled": Severity.INFO,
}


def factory(app) -> RunAlerts | None:
    """The consumer, when a notification is configured anywhere (top level or a job)."""
    return RunAlerts(app) if app.alerts.configured() else None


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def run_alert(payload: dict[str, Any], event: str, *, key: str, public_url: str | None = None) -> Alert:
    """The alert of one run event (``event``: started, succeeded, warning, failed, timed_out,
    cancelled), final; see :func:`retrying` for a failure that will be retried."""
    job, env, run_id = payload.get("job") or "?", payload.get("environment") or "?", payload.get("run_id")
    trigger = payload.get("trigger") or "manual"
    facts = [("Job", job), ("Environment", env), ("Trigger", trigger)]
    if payload.get("cause"):
        facts.append(("Cause", str(payload["cause"])[:200]))
    if duration := _duration(payload.get("duration_s")):
        facts.append(("Duration", duration))
    if (payload.get("attempt") or 1) > 1:
        facts.append(("Attempt", str(payload["attempt"])))
    facts.append(("Run", f"#{run_id}"))
    items = tuple(
        AlertItem(
            n.get("name") or n.get("unique_id") or "?",
            n.get("status") or "error",
            first_lines(n.get("message")),
            n.get("unique_id"),
        )
        for n in (payload.get("failed_nodes") or [])[:MAX_ITEMS]
    )
    total = max(int(payload.get("failed_nodes_total") or 0), len(items))
    text = ""
    if event in ("failed", "timed_out"):
        reason = payload.get("reason")
        text = f"Reason: {reason}." if reason else ""
        if not items:  # no node failed: the step that did (a compilation error, a crash)
            failed = [s for s in payload.get("steps") or [] if s.get("status") in ("error", "failed")]
            if failed:
                items = (AlertItem(failed[0].get("command") or "step", "error", reason),)
                total = 1
    url = f"{public_url.rstrip('/')}/runs/{run_id}" if public_url and run_id is not None else None
    return Alert(
        kind=AlertKind.RUN,
        event=event,
        subject=f"job:{job}@{env}",
        key=key,
        title=f"{job} {VERBS[event]} in {env}",
        severity=SEVERITY[event],
        text=text,
        facts=tuple(facts),
        items=items,
        items_total=total,
        url=url,
        job=job,
        environment=env,
        run_id=run_id,
        resolves=event in ("succeeded", "warning"),
        run=payload,
    )


def retrying(alert: Alert, *, attempt: int, max_attempts: int, backoff_s: float) -> Alert:
    """``alert`` (a failure) as one that will be retried: not final, not paged."""
    wait = f"{backoff_s:g} s" if backoff_s < 120 else _duration(backoff_s)
    note = f"Retrying in {wait}, attempt {attempt + 1} of {max_attempts}."
    return dataclasses.replace(
        alert,
        final=False,
        severity=Severity.WARNING,
        title=f"{alert.title} (retrying)",
        text=f"{alert.text} {note}".strip(),
    )


def last_attempt(alert: Alert, *, attempt: int, max_attempts: int) -> Alert:
    if max_attempts <= 1:
        return alert
    note = f"Attempt {attempt} of {max_attempts}: no more retries."
    return dataclasses.replace(alert, text=f"{alert.text} {note}".strip())


class RunAlerts(Consumer):
    """Run events to alerts (see the module doc)."""

    def __init__(self, app):
        super().__init__(app, "alerts")

    def deliver(self, event: Event) -> None:
        name = EVENTS.get(event.type)
        if name is None:
            return
        payload = event.payload or {}
        if name == "succeeded" and payload.get("has_warnings"):
            name = "warning"
        alert = run_alert(payload, name, key=f"alert:{event.key}", public_url=self.app.config.server.public_url)
        if name not in ("failed", "timed_out"):
            self.app.alerts.notify(alert)
            return
        decided = self.decide(alert, payload)
        if decided is not None:
            self.app.alerts.notify(decided)

    def decide(self, alert: Alert, payload: dict[str, Any], *, waited_s: float = 0.0) -> Alert | None:
        """The failure as it is sent (retrying or final), or None when deferred."""
        policy = self._retries(payload)
        attempt = int(payload.get("attempt") or 1)
        if policy is None or attempt >= policy.max_attempts:
            return last_attempt(alert, attempt=attempt, max_attempts=policy.max_attempts if policy else 1)
        backoff_s = policy.backoff_seconds * (2 ** (attempt - 1))
        store = self.app.store
        if store.reader.notifications.retry_run(alert.run_id) is not None:
            return retrying(alert, attempt=attempt, max_attempts=policy.max_attempts, backoff_s=backoff_s)
        if not self._may_retry(alert.run_id, policy) or waited_s >= DEFER_S:
            return last_attempt(alert, attempt=attempt, max_attempts=policy.max_attempts)
        forms = {
            "final": last_attempt(alert, attempt=attempt, max_attempts=policy.max_attempts).to_dict(),
            "retrying": retrying(
                alert, attempt=attempt, max_attempts=policy.max_attempts, backoff_s=backoff_s
            ).to_dict(),
        }
        base = {
            "alert_key": alert.key,
            "kind": alert.kind.value,
            "subject": alert.subject,
            "run_id": alert.run_id,
            "job": alert.job,
            "environment": alert.environment,
        }
        store.notifications.defer(base, forms, alert.event)
        log.info("run %s failed: its alert waits for the retry decision", alert.run_id)
        return None

    def _retries(self, payload: dict[str, Any]):
        ref = payload.get("job_id") if payload.get("job_id") is not None else payload.get("job")
        try:
            return self.app.jobs.get(ref).config.retries
        except (DockyardError, LookupError, ValueError, TypeError):
            return None

    def _may_retry(self, run_id: int | None, policy) -> bool:
        """Whether the process that ended the run will queue a retry (as ``maybe_retry``
        decides; a foreground run is never retried by itself)."""
        from dockyard.retry import failed_step, should_retry

        if run_id is None:
            return False
        try:
            run = self.app.store.reader.runs.get_run(run_id)
        except DockyardError:
            return False
        if run.claimed_at is None or run.cancel_requested_at is not None:
            return False
        step = failed_step(run)
        log_text = None
        if step is not None:
            try:
                log_text = self.app.runs.logs(run, step.index, tail=RETRY_LOG_TAIL_BYTES)
            except (DockyardError, OSError):
                log_text = None
        return bool(should_retry(run, policy, log_text))


def settle_deferred(app, *, run_id: int | None = None) -> int:
    """Decide the deferred failures (of ``run_id``): retrying once their retry is queued,
    final after :data:`DEFER_S` seconds; returns how many were decided."""
    decided = 0
    now = clock.now()
    store = app.store
    for row in store.notifications.deferred(run_id=run_id):
        forms = row.alert
        if store.reader.notifications.retry_run(row.run_id) is not None:
            form = "retrying"
        elif (now - row.created_at).total_seconds() >= DEFER_S:
            form = "final"
        else:
            continue
        app.alerts.notify(Alert.from_dict(forms[form]))  # idempotent on the alert key
        if store.notifications.undefer(row.id):
            decided += 1
    return decided
