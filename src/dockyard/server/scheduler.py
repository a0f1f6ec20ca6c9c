"""The scheduler: cron fires, job-completion triggers, the reaper of lost runs, retries, events.

Each of these is a duty (:mod:`dockyard.server.duties`, one small class each, applying pure
decisions such as :func:`due_fires` and :func:`completion_fires` over an injected clock);
:class:`Scheduler` runs them on every tick. A unique ``(job_id, fire_key)`` in the store
makes every fire happen at most once however many schedulers run and however often they
crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from dockyard import clock
from dockyard.crash import crash_point
from dockyard.server.duties import (
    BATCH,
    MAX_CATCHUP,
    MISFIRE_GRACE,
    DispatchEvents,
    Duty,
    FireCompletions,
    FireCrons,
    PollRepository,
    ReapLost,
    RequeueLostRetries,
    RunMonitors,
    SendDigest,
    SendNotifications,
    SweepPrSchemas,
    Tick,
    TickReport,
    Upstream,
    WriteWarehouseHistory,
    completion_fires,
    due_fires,
)
from dockyard.store.fires import fire_key as fire_key

__all__ = [
    "BATCH",
    "LEASE",
    "MAX_CATCHUP",
    "MISFIRE_GRACE",
    "Scheduler",
    "TickReport",
    "Upstream",
    "completion_fires",
    "due_fires",
    "fire_key",
]

log = logging.getLogger("dockyard.server.scheduler")

LEASE = "scheduler"


class Scheduler:
    """Runs the duties; one :meth:`tick` is one pass. :meth:`close` stops the event dispatch."""

    def __init__(self, app, holder: str, now: Callable[[], datetime] = clock.now):
        self.app = app
        self.holder = holder
        self.now = now
        self.duties: list[Duty] = [
            FireCrons(app),
            FireCompletions(app),
            ReapLost(app),
            RequeueLostRetries(app),
            PollRepository(app),  # code from git: repository.poll_seconds
            SweepPrSchemas(app),  # the CI janitor: PR schemas of closed pull requests
            SendNotifications(app),  # ALERTS: the queued alert deliveries (docs/alerts.md)
            WriteWarehouseHistory(app),  # METRICS: run results to the warehouse (docs/metrics.md)
            SendDigest(app),  # METRICS: the daily digest
            RunMonitors(app),  # MONITORS: checks after jobs, on cron, on request (docs/monitors.md)
            DispatchEvents(app, holder),  # last: delivers what the duties before it wrote
        ]

    @property
    def store(self):
        return self.app.store

    def tick(self) -> TickReport:
        now = self.now()
        report = TickReport()
        server = self.app.config.server
        if self.store.dialect == "sqlite":  # one scheduler at a time on SQLite
            ttl = max(3 * server.heartbeat_seconds, 10)
            if self.store.leases.acquire_lease(LEASE, self.holder, ttl, now=now) is None:
                report.leader = False
                return report
        crash_point("tick_leased")
        tick = Tick(now, report, self.app.job_ids())
        for duty in self.duties:
            duty.run(tick)
        return report

    def close(self) -> None:
        for duty in self.duties:
            duty.close()
