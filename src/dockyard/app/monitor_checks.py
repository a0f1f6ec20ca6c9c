"""The ``monitors`` event consumer: a check queued after each successful run of the jobs that
build a monitor's table (see :func:`dockyard.app.monitor_targets.targets_for_run`); the
scheduler's ``RunMonitors`` duty runs it (docs/monitors.md, "When monitors run")."""

from __future__ import annotations

from dockyard.app.consumer import Consumer
from dockyard.app.monitor_targets import targets_for_run


class MonitorConsumer(Consumer):
    """On ``run.succeeded``: queue a check of the monitors built by (or listed after) the job.
    Failed, cancelled and timed-out runs queue nothing: their tables are whatever the last
    good run left (a run alert says they failed)."""

    def __init__(self, app):
        super().__init__(app, "monitors")

    def deliver(self, event) -> None:
        if event.type != "run.succeeded":
            return
        payload = event.payload or {}
        env, job, run_id = payload.get("environment"), payload.get("job"), payload.get("run_id")
        if not env or run_id is None:
            return
        names = targets_for_run(self.app, env, job, run_id)
        if names:
            self.app.store.monitors.queue(f"after_job:{run_id}", names, env, "after_job", run_id=run_id, job=job)


def factory(app) -> MonitorConsumer | None:
    return MonitorConsumer(app) if app.config.monitors else None
