"""Slowdown alerts: a model that ran ``factor`` times slower than the median of its last
``last_runs`` successful executions in the same environment (docs/metrics.md).

The built-in consumer ``slowdown`` reads each run's final event: every model the run executed
successfully is compared with its baseline (at least ``min_runs`` earlier successful
executions; the run itself is never part of its baseline) and is *slow* when its time is over
``factor`` x the median and over ``min_seconds``. The models that became slow make ONE alert
for the run (kind ``slowdown``, event ``slow``, the models as items). A model's state is kept
per environment (store ``model_slowdowns``), so a model that stays slow does not alert again;
once every model an alert named is back under, that alert's subject is resolved (event
``resolved``). :func:`decide` is the pure part.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
from dataclasses import dataclass
from typing import Any

from dockyard.alert import MAX_ITEMS, Alert, AlertItem, AlertKind, Severity
from dockyard.events import Event, RunEvent
from dockyard.plugins import Sink, SinkContext

log = logging.getLogger("dockyard.app.slowdown")
MAX_SUBJECT = 400


@dataclass(frozen=True)
class Slow:
    unique_id: str
    name: str
    seconds: float
    median: float
    runs: int  # in the baseline

    @property
    def ratio(self) -> float:
        return self.seconds / self.median if self.median else float("inf")


def decide(
    times: dict[str, tuple[str, float]],
    baselines: dict[str, list[float]],
    slow_now: set[str],
    *,
    factor: float,
    min_runs: int,
    min_seconds: float,
) -> tuple[list[Slow], list[str]]:
    """``times``: uid -> (name, seconds) of this run's successful models; ``baselines``: uid ->
    earlier seconds; ``slow_now``: the models currently slow. Returns the models that became
    slow (slowest ratio first) and the slow models that are back under."""
    became, recovered = [], []
    for uid, (name, seconds) in sorted(times.items()):
        base = baselines.get(uid, [])
        if len(base) < min_runs:
            continue  # too little history to judge: the state stays as it is
        median = statistics.median(base)
        slow = seconds > factor * median and seconds > min_seconds
        if slow and uid not in slow_now:
            became.append(Slow(uid, name, seconds, median, len(base)))
        elif not slow and uid in slow_now:
            recovered.append(uid)
    became.sort(key=lambda s: (-s.ratio, s.unique_id))
    return became, recovered


def subject_of(unique_ids: list[str], environment: str) -> str:
    """``model:<unique_id>@<env>`` (several models: their ids joined by ``+``, bounded)."""
    joined = "+".join(sorted(unique_ids))
    if len(joined) > MAX_SUBJECT:
        joined = joined[: MAX_SUBJECT - 13] + "~" + hashlib.sha256(joined.encode()).hexdigest()[:12]
    return f"model:{joined}@{environment}"


def _run_url(app, run_id: int) -> str | None:
    base = getattr(app.config.server, "public_url", None)
    return f"{base.rstrip('/')}/runs/{run_id}" if base else None


class SlowdownConsumer(Sink):
    """The ``dockyard.slowdown`` consumer (see the module doc)."""

    def __init__(self, app):
        # a dockyard.app.consumers.Consumer, built as one (not imported: consumers imports
        # this module's factory, and the import graph stays without a cycle)
        super().__init__("dockyard.slowdown", {}, SinkContext(app.loaded.base_dir, app.state_dir, app.loaded.path))
        self.app = app

    def deliver(self, event: Event) -> None:
        if not RunEvent(event.type).is_final or event.run_id is None:
            return
        self.check_run(event.run_id)

    def check_run(self, run_id: int) -> list[Alert]:
        """Compare the run's models with their baselines, alert and record the new states;
        the alerts queued (idempotent: a second call for one run queues nothing new)."""
        config = self.app.config.metrics.slowdown
        state = self.app.store.metric_state
        run = self.app.store.reader.runs.get_run(run_id)
        env = run.environment
        times: dict[str, tuple[str, float]] = {}
        for node in run.nodes:
            if node.resource_type == "model" and node.status == "success" and node.execution_time_s is not None:
                times[node.unique_id] = (node.name, float(node.execution_time_s))
        if not times:
            return []
        baselines = state.baselines(env, list(times), run_id, config.last_runs)
        known = state.slow_states(env, list(times))
        slow_now = {uid for uid, s in known.items() if s["slow"]}
        became, recovered = decide(
            times,
            baselines,
            slow_now,
            factor=config.factor,
            min_runs=config.min_runs,
            min_seconds=config.min_seconds,
        )
        alerts: list[Alert] = []
        updates: dict[str, dict[str, Any]] = {}
        if became:
            alert = self._slow_alert(run, became)
            alerts.append(alert)
            for s in became:
                updates[s.unique_id] = {"slow": True, "subject": alert.subject, "run_id": run_id, "ratio": s.ratio}
        if recovered:
            still_slow = state.slow_states(env)  # every slow model of the environment
            for uid in recovered:
                updates[uid] = {"slow": False, "subject": known[uid]["subject"], "run_id": run_id, "ratio": None}
            subjects = sorted({known[uid]["subject"] for uid in recovered if known[uid]["subject"]})
            for subject in subjects:
                open_ = [u for u, s in still_slow.items() if s["subject"] == subject and u not in recovered]
                if not open_:  # every model that alert named is back under
                    named = [u for u in recovered if known[u]["subject"] == subject]
                    alerts.append(self._resolved_alert(run, subject, named, times))
        for alert in alerts:  # before the states: a crash in between alerts again, once (same key)
            self.app.alerts.notify(alert)
        state.set_slow_states(env, updates)
        return alerts

    def _facts(self, run) -> tuple[tuple[str, str], ...]:
        return (("Job", run.job), ("Environment", run.environment), ("Run", str(run.id)))

    def _slow_alert(self, run, became: list[Slow]) -> Alert:
        config = self.app.config.metrics.slowdown
        subject = subject_of([s.unique_id for s in became], run.environment)
        items = tuple(
            AlertItem(
                name=s.name,
                status="slow",
                message=f"{s.seconds:.1f} s: {s.ratio:.1f}x its median of {s.median:.1f} s over {s.runs} runs",
                unique_id=s.unique_id,
            )
            for s in became[:MAX_ITEMS]
        )
        first = became[0]
        title = (
            f"{first.name} ran {first.ratio:.1f}x slower than usual in {run.environment}"
            if len(became) == 1
            else f"{len(became)} models ran over {config.factor:g}x slower than usual in {run.environment}"
        )
        return Alert(
            kind=AlertKind.SLOWDOWN,
            event="slow",
            subject=subject,
            key=f"slowdown:{run.id}:slow",
            title=title,
            severity=Severity.WARNING,
            text=f"Run {run.id} of {run.job}: over {config.factor:g}x the median of the last "
            f"{config.last_runs} successful runs (and over {config.min_seconds:g} s).",
            facts=self._facts(run),
            items=items,
            items_total=len(became),
            url=_run_url(self.app, run.id),
            job=run.job,
            environment=run.environment,
            run_id=run.id,
        )

    def _resolved_alert(self, run, subject: str, named: list[str], times: dict[str, tuple[str, float]]) -> Alert:
        items = tuple(
            AlertItem(name=times[u][0], status="ok", message=f"{times[u][1]:.1f} s", unique_id=u)
            for u in sorted(named)[:MAX_ITEMS]
        )
        digest = hashlib.sha256(subject.encode()).hexdigest()[:12]
        return Alert(
            kind=AlertKind.SLOWDOWN,
            event="resolved",
            subject=subject,
            key=f"slowdown:{run.id}:resolved:{digest}",
            title=f"{'Model' if len(named) == 1 else 'Models'} back to usual speed in {run.environment}",
            severity=Severity.OK,
            text=f"Run {run.id} of {run.job}.",
            facts=self._facts(run),
            items=items,
            items_total=len(named),
            url=_run_url(self.app, run.id),
            job=run.job,
            environment=run.environment,
            run_id=run.id,
            resolves=True,
        )


def factory(app) -> SlowdownConsumer | None:
    """The consumer, or None when ``metrics.slowdown.enabled`` is false or no notification
    is configured at all (nobody to tell)."""
    if not app.config.metrics.slowdown.enabled:
        return None
    configured = getattr(getattr(app, "alerts", None), "configured", None)
    if configured is not None and not configured():
        return None
    return SlowdownConsumer(app)
