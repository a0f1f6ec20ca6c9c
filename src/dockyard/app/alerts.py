"""Alerts: routing an :class:`~dockyard.alert.Alert` to its channels, the delivery queue and log.

``app.alerts.notify(alert)`` is how every producer (run events, source freshness, monitors,
slowdowns, the digest) tells people something. It routes the alert (a job's own
``notifications:`` entries whose flags accept it, plus the top-level ``notifications:``
whose ``jobs``/``environments``/``kinds`` filters match), applies the no-storm rules of
:mod:`dockyard.app.alert_rules` and queues one delivery per channel in the store, idempotent
on (alert key, channel). It does no network I/O and never raises for a channel's problem:
the scheduler's ``SendNotifications`` duty sends the queue (:meth:`Alerts.send_pending`), and a
foreground ``dockyard run`` sends its run's deliveries before it exits.

Channels are named: a top-level notification by its ``name`` (``notifications:<index>``
without one), a job's by ``job:<job name>:<index>``. The names are what the delivery log
and ``dockyard notify test NAME`` show; no URL, key or password is ever part of them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from dockyard import clock
from dockyard.alert import Alert, AlertKind, Severity
from dockyard.app.alert_rules import decide
from dockyard.config.alerts import Notification, literal_secrets
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store.notifications import Decision, Delivery, Target

log = logging.getLogger("dockyard.app.alerts")
API_JOBS_TTL_S = 30.0


@dataclass(frozen=True)
class Channel:
    """A configured notification and its name in the delivery log."""

    name: str
    notification: Notification
    job: str | None = None  # a job's own entry (None: top level)


def top_level(config) -> list[Channel]:
    return [Channel(n.name or f"notifications:{i}", n) for i, n in enumerate(config.notifications)]


def job_channels(job_name: str, job_config) -> list[Channel]:
    return [Channel(f"job:{job_name}:{i}", n, job_name) for i, n in enumerate(job_config.notifications)]


class Alerts:
    """``app.alerts`` (see the module doc)."""

    def __init__(self, app):
        self.app = app
        self._api_checked: tuple[float, bool] | None = None

    # -- channels ----------------------------------------------------------------------------
    def configured(self) -> bool:
        """Whether any notification is configured: top level, in a job of dockyard.yml or in a
        job created through the API (those are looked up at most every :data:`API_JOBS_TTL_S`)."""
        config = self.app.config
        if config.notifications or any(j.notifications for j in config.jobs):
            return True
        now = time.monotonic()
        if self._api_checked is None or now - self._api_checked[0] >= API_JOBS_TTL_S:
            try:
                found = any(v.source == "api" and v.config.notifications for v in self.app.jobs.list())
            except (DockyardError, LookupError, ValueError):
                found = False
            self._api_checked = (now, found)
        return self._api_checked[1]

    def channels(self) -> list[Channel]:
        """Every configured channel: the top level, then each job of dockyard.yml."""
        out = top_level(self.app.config)
        for job in self.app.config.jobs:
            out += job_channels(job.name, job)
        return out

    def channel(self, name: str) -> Channel:
        """A channel by its name (``dockyard notify test NAME``)."""
        for channel in self.channels():
            if channel.name == name:
                return channel
        if name.startswith("job:"):  # a job created through the API
            job_name, _, index = name[4:].rpartition(":")
            job = self._job_config(job_name)
            if job is not None and index.isdigit() and int(index) < len(job.notifications):
                return job_channels(job_name, job)[int(index)]
        known = ", ".join(c.name for c in self.channels()) or "none is configured"
        raise NotFoundError(f"no notification named {name!r}", hint=f"known: {known}")

    def warnings(self) -> list[str]:
        """``dockyard validate``'s warnings: the literal webhook URLs, keys and secrets."""
        what = {"webhook_url": "a webhook URL", "url": "a webhook URL", "integration_key": "an integration key"}
        out = []
        for channel in self.channels():
            for key in literal_secrets(channel.notification):
                out.append(
                    f"{channel.name} ({channel.notification.type}): {what.get(key, 'a signing secret')} in "
                    f"dockyard.yml is a secret in git: use env:NAME (or file:PATH) for '{key}'"
                )
        return out

    def _job_config(self, name: str):
        for job in self.app.config.jobs:
            if job.name == name:
                return job
        try:
            return self.app.jobs.get(name).config
        except (DockyardError, LookupError, ValueError):
            return None

    def route(self, alert: Alert) -> list[Channel]:
        """The channels ``alert`` may go to before the flags and no-storm rules."""
        out: list[Channel] = []
        if alert.job:
            job = self._job_config(alert.job)
            if job is not None:
                out += job_channels(alert.job, job)
        out += [
            c
            for c in top_level(self.app.config)
            if c.notification.matches(alert.job, alert.environment)
            and (c.notification.kinds is None or alert.kind in c.notification.kinds)
        ]
        return out

    # -- queueing ----------------------------------------------------------------------------
    def notify(self, alert: Alert, channels: Sequence[str] | None = None) -> int:
        """Queue ``alert`` for its channels (see the module doc); with ``channels``, only to
        the top-level notifications of those names, without filters or no-storm rules (the
        digest, tests). Returns how many deliveries were queued; never raises (an error is
        logged and 0 returned)."""
        try:
            return self._notify(alert, channels)
        except Exception:  # noqa: BLE001 - alerting never breaks its caller
            log.exception("alert %s (%s) not queued", alert.key, alert.subject)
            return 0

    def _notify(self, alert: Alert, channels: Sequence[str] | None) -> int:
        now = clock.now()
        if channels is not None:
            by_name = {c.name: c for c in top_level(self.app.config)}
            for missing in sorted(set(channels) - set(by_name)):
                log.warning("alert %s: no top-level notification named %r", alert.key, missing)
            chosen = [by_name[n] for n in dict.fromkeys(channels) if n in by_name]
            targets = [Target(c.name, c.notification.type, alert.to_dict(), alert.event) for c in chosen]
            written = self.app.store.notifications.queue(
                _base(alert), targets, lambda target, state: Decision("pending"), now=now
            )
            return sum(1 for _, status in written if status == "pending")
        routed = self.route(alert)
        if not routed:
            return 0
        realert = self.app.config.alerts.realert_minutes
        by_name: dict[str, Channel] = {c.name: c for c in routed}
        targets = [Target(c.name, c.notification.type, {}, alert.event) for c in routed]

        def decide_one(target: Target, state) -> Decision:
            decision, shaped = decide(
                by_name[target.channel].notification, alert, state, now=now, realert_minutes=realert
            )
            # the row holds the alert as this channel gets it (a resolve, a plain success)
            return dataclasses.replace(decision, alert=shaped.to_dict(), event=shaped.event)

        written = self.app.store.notifications.queue(_base(alert), targets, decide_one, now=now)
        queued = sum(1 for _, status in written if status == "pending")
        if written:
            log.info(
                "alert %s (%s %s): %s",
                alert.key,
                alert.kind.value,
                alert.event,
                ", ".join(f"{name} {status}" for name, status in written),
            )
        return queued

    # -- sending -----------------------------------------------------------------------------
    @cached_property
    def sender(self):
        from dockyard.app.sender import Sender

        return Sender(self.app)

    def send_pending(self, deadline: float, *, run_id: int | None = None, wait: bool = False) -> int:
        """Settle the deferred run failures and start sending the due deliveries (of
        ``run_id``) in the sender's threads; with ``wait``, go on (retries after their
        backoff included) until nothing of ``run_id`` is left to send or ``deadline``
        (``time.monotonic()``). Returns how many deliveries were started. Never raises for a
        channel; the duty and the foreground flush call it."""
        from dockyard.app.run_alerts import settle_deferred

        started = 0
        while True:
            settle_deferred(self.app, run_id=run_id)
            started += self.sender.start_due(run_id=run_id)
            if not wait or time.monotonic() >= deadline:
                return started
            if not self.sender.in_flight() and not self._due_before(deadline, run_id):
                return started
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _due_before(self, deadline: float, run_id: int | None) -> bool:
        """Whether a delivery of ``run_id`` is deferred or will be due before ``deadline``."""
        until = clock.now() + timedelta(seconds=max(0.0, deadline - time.monotonic()))
        rows = self.app.store.reader.notifications.deliveries(run_id=run_id, statuses=["pending", "deferred"])
        return any(r.status == "deferred" or r.next_attempt_at is None or r.next_attempt_at <= until for r in rows)

    def flush_run(self, run_id: int, wait_s: float | None = None) -> bool:
        """A foreground run's alerts: send its deliveries within ``wait_s``
        (``events.foreground_wait_seconds``); True when none is left. Never raises."""
        try:
            if not self.app.store.reader.notifications.pending_count(run_id=run_id):
                return True  # nothing queued or deferred for it (no channel, or all sent)
            wait_s = self.app.config.events.foreground_wait_seconds if wait_s is None else wait_s
            deadline = time.monotonic() + wait_s
            self.send_pending(deadline, run_id=run_id, wait=True)
            self.sender.wait(deadline)
            left = self.app.store.reader.notifications.pending_count(run_id=run_id)
            if left:
                log.warning(
                    "run %s: %s alert deliveries not sent within %.0f s (a scheduler sends them)", run_id, left, wait_s
                )
            return not left
        except Exception:  # noqa: BLE001 - a run's outcome never depends on its alerts
            log.exception("run %s: alerts not sent", run_id)
            return False

    def test(self, name: str) -> str:
        """Send a sample alert through the channel ``name`` now (``dockyard notify test``);
        returns the channel's answer, raises its :class:`~dockyard.errors.DockyardError`.
        The attempt is in the delivery log."""
        channel = self.channel(name)
        now = clock.now()
        alert = Alert(
            kind=AlertKind.TEST,
            event="test",
            subject=f"test:{channel.name}",
            key=f"test:{channel.name}:{now.isoformat()}",
            title="dockyard test message",
            severity=Severity.INFO,
            text=f"A test of the notification {channel.name!r} ({channel.notification.type}): it works.",
            facts=(("Channel", channel.name), ("Type", channel.notification.type)),
            job=channel.job,
            url=self.app.config.server.public_url,
        )
        return self.sender.send_now(channel, alert)

    # -- the log -----------------------------------------------------------------------------
    def deliveries(self, run_id: int | None = None, limit: int = 100) -> list[dict]:
        """The delivery log, newest first (of ``run_id`` when given): channel, type, event,
        status, attempts, last error, result, times. No secrets."""
        rows: list[Delivery] = self.app.store.reader.notifications.deliveries(run_id=run_id, limit=limit)
        return [r.to_dict() for r in rows]


def _base(alert: Alert) -> dict:
    return {
        "alert_key": alert.key[:255],
        "kind": alert.kind.value,
        "subject": alert.subject[:500],
        "run_id": alert.run_id,
        "job": alert.job,
        "environment": alert.environment,
    }
