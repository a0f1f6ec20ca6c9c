"""The scheduler's duties, one small class each, and the pure decisions they apply.

Each duty's :meth:`Duty.run` does its part of one scheduler tick (:class:`Tick`: the
time, the report, the jobs' ids). :class:`dockyard.server.scheduler.Scheduler` runs them in
order: fire cron schedules, fire completion triggers, reap lost runs, requeue lost
retries, dispatch events. The decisions (:func:`due_fires`, :func:`completion_fires`) are
pure functions over an injected clock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dockyard.crash import crash_point
from dockyard.errors import DockyardError, StoreError
from dockyard.schedule import fire_times_between
from dockyard.store.fires import JobFires
from dockyard.store.persist import persist

log = logging.getLogger("dockyard.server.scheduler")

MISFIRE_GRACE = timedelta(seconds=60)  # a fire later than this counts as missed
MAX_CATCHUP = 1000
BATCH = 200  # cron fires (and jobs) written per store transaction


def due_fires(
    cron: str,
    timezone: str,
    last_fire: datetime | None,
    now: datetime,
    *,
    policy: str = "latest",
    window_s: float = 86400,
) -> tuple[list[datetime], datetime]:
    """The fires to enqueue now, and the new ``last_fire``.

    A job seen for the first time (``last_fire`` None) starts from ``now``: nothing fires
    for times before dockyard knew the job. Fires in ``(last_fire, now]`` are due; those
    later than :data:`MISFIRE_GRACE` are *missed* and handled by ``policy``: ``latest``
    keeps only the most recent due fire, ``none`` drops every missed one, ``all`` keeps
    them all. Only fires within ``window_s`` of ``now`` are considered.
    """
    if last_fire is None:
        return [], now
    start = max(last_fire, now - max(timedelta(seconds=window_s), MISFIRE_GRACE))
    due = fire_times_between(cron, timezone, start, now, limit=MAX_CATCHUP) if start < now else []
    on_time = [f for f in due if now - f <= MISFIRE_GRACE]
    if policy == "all":
        fires = due
    elif policy == "none":
        fires = on_time
    else:
        fires = due[-1:]
    return fires, max(now, last_fire)


@dataclass
class Upstream:
    """The latest final run of an upstream job, for ``triggers.after``."""

    job: str
    run_id: int
    status: str
    finished_at: datetime


def completion_fires(
    when: str,
    statuses: list[str],
    upstream_jobs: list[str],
    latest: dict[str, list[Upstream]],
    last_fired_at: datetime | None,
) -> list[str]:
    """Fire keys for a job with ``triggers.after``.

    ``latest`` maps each upstream job to its final runs newer than ``last_fired_at``
    (newest first). ``any``: one fire per qualifying upstream run. ``all``: one fire when
    every upstream job has a qualifying run since the last such fire.
    """
    if when == "any":
        return [f"after:{u.run_id}" for job in upstream_jobs for u in latest.get(job, []) if u.status in statuses]
    chosen = []
    for job in upstream_jobs:
        runs = [u for u in latest.get(job, []) if u.status in statuses]
        if not runs:
            return []
        chosen.append(runs[0].run_id)
    return ["after:" + ",".join(str(r) for r in sorted(chosen))]


@dataclass
class TickReport:
    enqueued: list[int] = field(default_factory=list)
    duplicates: int = 0
    reaped: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    leader: bool = True


@dataclass
class Tick:
    """One pass of the scheduler, as its duties see it."""

    now: datetime
    report: TickReport
    job_ids: dict[str, int]


class Duty:
    """One thing the scheduler does on every tick."""

    name = ""

    def __init__(self, app):
        self.app = app

    def run(self, tick: Tick) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """The scheduler is stopping."""


class FireCrons(Duty):
    name = "fire cron"

    def run(self, tick: Tick) -> None:
        ids = tick.job_ids
        self.fire(
            [(job, ids[job.name]) for job in self.app.config.jobs if job.cron and job.name in ids],
            tick.now,
            tick.report,
        )

    def fire(self, jobs: list[tuple], now: datetime, report: TickReport) -> None:
        """Every cron job's due fires: the schedule states are read in one query, the fires
        computed in memory (once per distinct schedule and state), then written with their
        runs and new states in batches of at most :data:`BATCH` jobs and fires, one store
        transaction each (:meth:`Store.queue.enqueue_fires`); the jobs with nothing due have their
        states moved to ``now`` in one statement. A crash between two batches leaves the later
        jobs untouched; the next tick (or the other scheduler) fires them."""
        last = self.app.store.queue.last_fires([job_id for _, job_id in jobs])
        memo: dict[tuple, tuple[list[datetime], datetime]] = {}
        todo: list[JobFires] = []
        idle: list[int] = []  # jobs with nothing due whose state just moves to now
        for job, job_id in jobs:
            prev = last.get(job_id)
            key = (job.schedule.cron, job.schedule.timezone, prev, job.catchup, job.catchup_window_seconds)
            try:
                if key not in memo:
                    memo[key] = due_fires(
                        job.schedule.cron,
                        job.schedule.timezone,
                        prev,
                        now,
                        policy=job.catchup,
                        window_s=job.catchup_window_seconds,
                    )
            except Exception as exc:  # noqa: BLE001 - one job's uncomputable schedule must not stop the tick
                log.warning(
                    "job %s: schedule %r (%s) cannot be computed, skipped: %s",
                    job.name,
                    job.schedule.cron,
                    job.schedule.timezone,
                    exc,
                )
                continue
            times, new_last = memo[key]
            if not times and prev is not None and new_last > prev:
                idle.append(job_id)  # new_last is now
            elif times or prev is None:
                todo.append(
                    JobFires(
                        job_id,
                        job.name,
                        job.environment,
                        list(job.all_commands),
                        job.priority,
                        not job.allow_overlap,
                        list(times),
                        new_last,
                    )
                )
        batch: list[JobFires] = []
        size = 0  # fires in the batch, a job without any counting as one
        for i, entry in enumerate(todo):
            batch.append(entry)
            size += max(1, len(entry.times))
            if i + 1 == len(todo) or size + max(1, len(todo[i + 1].times)) > BATCH:
                result = self.app.store.queue.enqueue_fires(batch)
                report.enqueued += result.created
                report.duplicates += result.duplicates
                if any(j.times for j in batch):
                    crash_point("run_inserted")
                batch, size = [], 0
        self.app.store.queue.advance_schedules(idle, now)
        crash_point("tick_committed")


class FireCompletions(Duty):
    name = "fire completions"

    def run(self, tick: Tick) -> None:
        ids = tick.job_ids
        self.fire(
            [(job, ids[job.name]) for job in self.app.config.jobs if job.triggers.after and job.name in ids],
            tick.now,
            tick.report,
        )

    def fire(self, jobs: list[tuple], now: datetime, report: TickReport) -> None:
        """Every job's completion triggers: the jobs' last fires in one query, the final runs of
        each upstream job in one query (from the earliest of its watchers' last fires; each
        watcher keeps those after its own), the baselines of jobs seen for the first time in
        one insert (only runs finishing from now on count for them)."""
        last = self.app.store.queue.last_completion_fires([job_id for _, job_id in jobs])
        self.app.store.queue.mark_fires([job_id for _, job_id in jobs if job_id not in last], "after:baseline", now)
        watching = [(job, job_id, _since(job.triggers.after, last[job_id])) for job, job_id in jobs if job_id in last]
        earliest: dict[str, datetime] = {}
        for job, _, since in watching:
            for name in job.triggers.after.jobs:
                earliest[name] = min(earliest.get(name, since), since)
        finals = {
            name: [
                Upstream(name, r.id, r.status.value, r.finished_at)
                for r in self.app.store.queue.final_runs_since(name, since)
            ]
            for name, since in earliest.items()
        }
        for job, job_id, since in watching:
            after = job.triggers.after
            latest = {name: [u for u in finals[name] if u.finished_at > since] for name in after.jobs}
            for key in completion_fires(after.when, list(after.status), after.jobs, latest, last[job_id]):
                result = self._enqueue(
                    job,
                    job_id,
                    trigger="job_completion",
                    fire_key=key,
                    cause=f"Triggered by completion of {', '.join(after.jobs)}",
                )
                if result.duplicate_fire:
                    report.duplicates += 1
                elif result.created or result.coalesced:
                    report.enqueued.append(result.run_id)

    def _enqueue(self, job, job_id: int, **kw):
        """``App.enqueue`` for a job of dockyard.yml whose id is known: without listing every
        job to find it, which per fire made a tick of many triggered jobs quadratic."""
        return self.app.store.queue.enqueue(
            job_id,
            job.name,
            job.environment,
            job.all_commands,
            priority=job.priority,
            coalesce=not job.allow_overlap,
            **kw,
        )


class ReapLost(Duty):
    """End the runs whose worker is gone (see ``Store.leases.reap``), kill what is left of them on
    this host and queue the retries their jobs allow."""

    name = "reap"

    def run(self, tick: Tick) -> None:
        server = self.app.config.server
        for reaped in self.app.store.leases.reap(server.lost_after_seconds, now=tick.now):
            tick.report.reaped.append(reaped.run_id)
            self.app.runs.stop_lost_process(reaped)
            # the reap is committed: its retry must not be lost to a dropped connection
            retry = persist(
                lambda r=reaped: self.app.runs.maybe_retry(r.run_id),
                timeout=server.lost_after_seconds,
                what=f"retry of run {reaped.run_id}",
            )
            if retry:
                tick.report.retried.append(retry)


class RequeueLostRetries(Duty):
    name = "requeue lost retries"

    def __init__(self, app):
        super().__init__(app)
        self._checked: set[int] = set()  # failed runs already offered to maybe_retry

    def run(self, tick: Tick) -> None:
        now, report = tick.now, tick.report
        """Queue the retries that a crash lost: a worker or a scheduler killed between ending a
        run ``error`` and queueing its retry. Runs that failed in the last
        ``max(600, 10 * lost_after_seconds)`` seconds without a retry are offered to
        ``maybe_retry`` (idempotent: one retry per failed run), each once per scheduler process."""
        window = timedelta(seconds=max(600.0, 10 * self.app.config.server.lost_after_seconds))
        candidates = self.app.store.runs.failed_without_retry(now - window, now)
        self._checked &= set(candidates)  # forget what left the window
        for run_id in candidates:
            if run_id in self._checked:
                continue
            retry = self.app.runs.maybe_retry(run_id)
            self._checked.add(run_id)
            if retry:
                log.warning(
                    "run %s: its retry had not been queued (a process died in between); queued run %s", run_id, retry
                )
                report.retried.append(retry)


class PollRepository(Duty):
    """Code from git with ``repository.poll_seconds > 0``: fetch the deploy branch that often
    and deploy a new head (``app.repository.poll``; a refused commit is not retried), then
    queue the jobs with ``triggers.on_merge`` on it, as a push webhook does (once per commit:
    the fire key ``poll:<sha>``, so a push webhook and a poll of one commit queue them once each
    per key, and a restarted scheduler never twice)."""

    name = "poll repository"

    def __init__(self, app):
        super().__init__(app)
        self._next = 0.0

    def run(self, tick: Tick) -> None:
        repo = self.app.config.repository
        if repo is None or repo.poll_seconds <= 0 or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + repo.poll_seconds
        try:
            answer = self.app.repository.poll()
        except DockyardError as exc:
            log.warning("poll of the repository failed: %s", exc.render())
            return
        if answer is None:
            return
        log.info("polled the repository: commit %s %s", answer["sha"][:12], answer["status"])
        if answer["status"] == "ok":
            from dockyard.ci.controller import Controller, fire_key

            try:
                runs = Controller(self.app).on_merge(answer["sha"], repo.branch, fire_key("poll", answer["sha"]))
            except DockyardError as exc:
                log.warning("on_merge jobs of commit %s not queued: %s", answer["sha"][:12], exc.render())
                return
            if runs:
                log.info("queued %d on_merge run(s) of commit %s", len(runs), answer["sha"][:12])


class SweepPrSchemas(Duty):
    """The CI janitor: every :attr:`EVERY_S` seconds, ``app.ci.janitor()`` drops the PR schemas
    whose pull request is gone (``ci.janitor_after_hours`` without a build), and delivered
    webhook records older than :attr:`KEEP_DELIVERIES` are forgotten. The sweep runs in a
    thread of its own (one at a time), so a slow warehouse never holds up a tick; it waits
    while a run of the CI environment is starting or running (DuckDB lets one process write)."""

    name = "ci janitor"
    EVERY_S = 600.0
    KEEP_DELIVERIES = timedelta(days=30)

    def __init__(self, app):
        super().__init__(app)
        self._next = time.monotonic() + self.EVERY_S  # not at start: a restart loop must not sweep each time
        self._thread: threading.Thread | None = None
        self.dropped: list[str] = []  # the last sweep's (for tests and status)

    def run(self, tick: Tick) -> None:
        ci = self.app.config.ci
        if ci.environment not in self.app.config.environments:
            return
        if time.monotonic() < self._next or (self._thread is not None and self._thread.is_alive()):
            return
        busy, _ = self.app.runs.search(statuses=["starting", "running"], environments=[ci.environment], limit=1)
        if busy:
            return  # again on a later tick
        self._next = time.monotonic() + self.EVERY_S
        self._thread = threading.Thread(target=self.sweep, args=(tick.now,), name="ci-janitor", daemon=True)
        self._thread.start()

    def sweep(self, now: datetime) -> list[str]:
        started = time.monotonic()
        try:
            self.dropped = list(self.app.ci.janitor())
            forgotten = self.app.store.webhooks.prune(now - self.KEEP_DELIVERIES)
        except DockyardError as exc:
            log.warning("ci janitor: %s", exc.render())
            return []
        except Exception:  # noqa: BLE001 - the janitor's thread must not die silently
            log.exception("ci janitor failed")
            return []
        if self.dropped:
            log.info("ci janitor dropped %d PR schema(s): %s", len(self.dropped), ", ".join(self.dropped))
        if forgotten:
            log.info("ci janitor forgot %d webhook deliveries older than %s", forgotten, self.KEEP_DELIVERIES)
        log.debug("ci janitor swept in %.1f s", time.monotonic() - started)
        return self.dropped

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=1.0)


class DispatchEvents(Duty):
    """Deliver the outbox to the configured sinks (``events.sinks``), off the tick thread.

    One daemon thread per sink runs :class:`dockyard.app.delivery.SinkDelivery` passes: when
    a tick nudges it, and at least every :data:`POLL_S` seconds. A slow or failing sink holds
    up only its own thread; the tick itself only starts the threads (again after a config
    reload changed ``events``), nudges them and, once an hour, prunes delivered events older
    than ``events.retention_days``."""

    name = "dispatch events"
    POLL_S = 1.0
    PRUNE_EVERY = timedelta(hours=1)

    def __init__(self, app, holder: str):
        super().__init__(app)
        self.holder = holder
        self._config = None
        self._threads: list[_SinkThread] = []
        self._pruned: datetime | None = None

    def run(self, tick: Tick) -> None:
        from dockyard.app.consumers import signature

        events = self.app.config.events
        wanted = signature(self.app)
        if wanted != self._config:
            self._restart(wanted)
        for thread in self._threads:
            thread.nudge()
        if self._pruned is None or tick.now - self._pruned >= self.PRUNE_EVERY:
            self._pruned = tick.now
            try:
                pruned = self.app.store.outbox.prune_outbox(
                    tick.now - timedelta(days=events.retention_days), [t.delivery.sink.name for t in self._threads]
                )
                if pruned:
                    log.info("pruned %s delivered events older than %g days", pruned, events.retention_days)
            except StoreError as exc:
                log.warning("pruning the outbox: %s", exc.what)

    def _restart(self, wanted) -> None:
        from dockyard.app.delivery import deliveries

        self.close()
        self._config = wanted
        try:
            made = deliveries(self.app, self.holder)
        except (DockyardError, ValueError, LookupError, TypeError) as exc:
            log.error("event sinks not started: %s", exc)
            return
        self._threads = [_SinkThread(d, self.POLL_S) for d in made]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.stop()
        for thread in threads:
            thread.join(timeout=1.0)
            thread.delivery.release()
            try:
                thread.delivery.sink.close()
            except Exception:  # noqa: BLE001 - a sink's close must not stop the scheduler
                log.exception("event sink %s: close failed", thread.delivery.sink.name)


class _SinkThread(threading.Thread):
    def __init__(self, delivery, poll_s: float):
        super().__init__(name=f"dispatch-{delivery.sink.name}", daemon=True)
        self.delivery = delivery
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._halt = threading.Event()

    def nudge(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()

    def run(self) -> None:
        while not self._halt.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._halt.is_set():
                break
            try:
                result = self.delivery.run_pass()
            except StoreError as exc:
                log.warning("event sink %s: store unreachable: %s", self.delivery.sink.name, exc.what)
                continue
            except Exception:  # noqa: BLE001 - the dispatcher thread must survive anything
                log.exception("event sink %s: dispatch failed", self.delivery.sink.name)
                self._halt.wait(self.poll_s)
                continue
            if result.more:
                self._wake.set()  # a full batch: go on at once


def _since(after, last_fired: datetime) -> datetime:
    """Upstream runs finished after this count for a trigger last fired at ``last_fired``:
    'any' fires per upstream run (keys are run ids), so it looks back a little further and
    catches a run committed just after a tick read."""
    return last_fired - timedelta(seconds=30) if after.when == "any" else last_fired


# -- ALERTS: sending the queued alert deliveries -------------------------------------------


class SendNotifications(Duty):
    """Send the queued alert deliveries (``app.alerts.send_pending``): each tick settles the
    deferred run failures and starts the due deliveries in the sender's threads, one per
    delivery (bounded by ``alerts.timeout_seconds``, retried with backoff up to
    ``alerts.max_attempts``). The tick never waits for a channel (docs/alerts.md)."""

    name = "send notifications"

    def run(self, tick: Tick) -> None:
        alerts = self.app.alerts
        if not alerts.configured():
            return
        try:
            started = alerts.send_pending(time.monotonic())
        except StoreError as exc:
            log.warning("alerts: store unreachable: %s", exc.what)
            return
        except Exception:  # noqa: BLE001 - sending alerts must never stop the scheduler
            log.exception("alerts: sending failed")
            return
        if started:
            log.debug("alerts: %d deliveries started", started)


# -- METRICS: the run history in the warehouse, the daily digest ---------------------------


def _holder() -> str:
    import os
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WriteWarehouseHistory(Duty):
    """``metrics.warehouse_history``: write the queued runs' results to their environment's
    warehouse (:func:`dockyard.app.history.write_pending`: one ``dbt run-operation`` per run,
    retried with backoff), in a thread of its own, one pass at a time, at most every
    :attr:`EVERY_S` seconds: a slow warehouse never holds up a tick, and never a run."""

    name = "warehouse history"
    EVERY_S = 5.0

    def __init__(self, app):
        super().__init__(app)
        self.holder = _holder()
        self._next = 0.0
        self._thread: threading.Thread | None = None
        self.last: list[tuple[int, str]] = []  # the last pass's (for tests and status)

    def run(self, tick: Tick) -> None:
        if not self.app.config.metrics.warehouse_history.enabled:
            return
        if time.monotonic() < self._next or (self._thread is not None and self._thread.is_alive()):
            return
        self._next = time.monotonic() + self.EVERY_S
        self._thread = threading.Thread(target=self.write, name="warehouse-history", daemon=True)
        self._thread.start()

    def write(self) -> list[tuple[int, str]]:
        from dockyard.app.history import write_pending

        try:
            self.last = write_pending(self.app, self.holder)
        except StoreError as exc:
            log.warning("warehouse history: store unreachable: %s", exc.what)
            return []
        except Exception:  # noqa: BLE001 - the writer's thread must not die silently
            log.exception("warehouse history failed")
            return []
        return self.last

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=1.0)


class SendDigest(Duty):
    """``metrics.digest``: at ``at`` in ``timezone``, once per local day across every scheduler
    (the store's ``digests`` row for the day is claimed first), the digest alert goes to the
    notifications of ``notify`` (``app.alerts.notify(alert, channels=...)``: queued only; the
    ``SendNotifications`` duty sends). :func:`dockyard.app.digest.due_day` decides."""

    name = "daily digest"
    CLAIM_TTL_S = 600.0

    def __init__(self, app):
        super().__init__(app)
        self.holder = _holder()
        self._done: set[str] = set()  # days this scheduler saw sent (no claim every tick)

    def run(self, tick: Tick) -> None:
        from dockyard.app import digest

        config = self.app.config.metrics.digest
        if config is None:
            return
        day = digest.due_day(tick.now, config.at, config.timezone)
        if day is None or day in self._done:
            return
        try:
            if not self.app.store.metric_state.claim_digest(day, self.holder, self.CLAIM_TTL_S, now=tick.now):
                if (self.app.store.metric_state.digest(day) or {}).get("sent_at") is not None:
                    self._done.add(day)
                return
            alert = digest.build(self.app, day, tick.now)
            queued = self.app.alerts.notify(alert, channels=list(config.notify))
            self.app.store.metric_state.digest_sent(day, self.holder, queued, now=tick.now)
        except StoreError as exc:
            log.warning("daily digest: store unreachable: %s", exc.what)
            return
        except Exception:  # noqa: BLE001 - the digest must never stop the scheduler
            log.exception("daily digest of %s failed (again once the claim expires)", day)
            return
        self._done.add(day)
        log.info("daily digest of %s: %d deliveries queued", day, queued)


# -- MONITORS: data monitors after jobs, on their cron, on request -------------------------


class RunMonitors(Duty):
    """Data monitors (docs/monitors.md): each tick queues the monitors whose cron fired (once
    per fire: the check's key holds the fire time; a fire missed by more than
    :attr:`FIRE_WINDOW` is skipped), and when checks are queued starts one thread that runs
    them (``app.monitors.run_pending``: one ``dbt run-operation`` per check), so a slow
    warehouse never holds up a tick or a run. A check of an environment with a run starting or
    running waits (DuckDB lets one process write its file)."""

    name = "run monitors"
    FIRE_WINDOW = timedelta(minutes=10)
    EVERY_S = 2.0
    PRUNE_EVERY = timedelta(hours=1)
    KEEP_CHECKS = timedelta(days=7)  # finished checks are forgotten after this (measurements stay)

    def __init__(self, app):
        super().__init__(app)
        import os
        import socket

        self.holder = f"{socket.gethostname()}:{os.getpid()}:monitors"
        self._next = 0.0
        self._pruned: datetime | None = None
        self._thread: threading.Thread | None = None
        self.ran = 0  # checks run by the last thread (for tests)

    def run(self, tick: Tick) -> None:
        if not self.app.config.monitors or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.EVERY_S
        try:
            self.fire(tick.now)
            if self._pruned is None or tick.now - self._pruned >= self.PRUNE_EVERY:
                self._pruned = tick.now
                self.app.store.monitors.prune_checks(tick.now - self.KEEP_CHECKS)
            if self._thread is not None and self._thread.is_alive():
                return
            if not self.app.store.monitors.pending():
                return
        except StoreError as exc:
            log.warning("monitors: store unreachable: %s", exc.what)
            return
        self._thread = threading.Thread(target=self.work, name="monitors", daemon=True)
        self._thread.start()

    def fire(self, now: datetime) -> int:
        """Queue the monitors whose cron fired within :attr:`FIRE_WINDOW`; how many were queued."""
        from dockyard.app.monitor_targets import environment_of

        queued = 0
        for monitor in self.app.config.monitors:
            if monitor.schedule is None:
                continue
            fires = fire_times_between(monitor.schedule.cron, monitor.schedule.timezone, now - self.FIRE_WINDOW, now)
            if not fires:
                continue
            try:
                env = environment_of(self.app, monitor)
            except DockyardError as exc:
                log.warning("monitor %s not checked: %s", monitor.name, exc.what)
                continue
            key = f"schedule:{monitor.name}@{env}:{fires[-1].isoformat()}"
            queued += self.app.store.monitors.queue(key, [monitor.name], env, "schedule")
        return queued

    def busy(self, env: str) -> bool:
        runs, _ = self.app.runs.search(statuses=["starting", "running"], environments=[env], limit=1)
        return bool(runs)

    def work(self) -> int:
        try:
            self.ran = self.app.monitors.run_pending(self.holder, busy=self.busy)
        except StoreError as exc:
            log.warning("monitors: store unreachable: %s", exc.what)
        except Exception:  # noqa: BLE001 - the monitors' thread must not die silently
            log.exception("monitors: checks failed")
        return self.ran

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=1.0)
