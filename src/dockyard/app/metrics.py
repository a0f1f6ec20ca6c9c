"""Run metrics, service ``app.metrics``: what the runs tell over time (docs/metrics.md).

Per model: its duration history, rows affected and status, and a summary over a window;
per test: pass and fail rates; per job: run counts and durations by status and the queue
time (``started_at - queued_at``); source freshness (from ``app.freshness``). Only executed
nodes count: the ``compiled`` results of ``docs generate``, ``compile`` and ``ls`` do not.
The API (``/api/v1/metrics/...``) and the Prometheus collector
(:mod:`dockyard.app.prometheus`) read these.
"""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

from dockyard import clock
from dockyard.domain import FAILED_STATUSES
from dockyard.events import Event, RunEvent
from dockyard.plugins import Sink, SinkContext

MAX_DAYS = 365
MAX_LIMIT = 1000


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _figures(values: list[float]) -> dict[str, float | None]:
    return {
        "mean_s": statistics.fmean(values) if values else None,
        "median_s": statistics.median(values) if values else None,
        "p95_s": percentile(values, 0.95),
        "max_s": max(values) if values else None,
    }


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


class Metrics:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    @property
    def _reader(self):
        return self.app.store.reader.metrics

    def models(
        self,
        *,
        job: str | None = None,
        environment: str | None = None,
        days: int = 7,
        limit: int = 200,
        resource_types: tuple[str, ...] = ("model",),
    ) -> list[dict[str, Any]]:
        """Every model executed in the last ``days`` days (final runs; ``job``,
        ``environment`` narrow it), slowest total first: runs, failures, the last execution
        (status, seconds, rows, run id) and mean / median / p95 / max seconds."""
        since = clock.now() - timedelta(days=_clamp(days, 1, MAX_DAYS))
        rows = self._reader.node_rows(since=since, job=job, environment=environment, resource_types=resource_types)
        by_model: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = by_model.setdefault(
                r.unique_id,
                {"unique_id": r.unique_id, "name": r.name, "resource_type": r.resource_type, "_runs": {}},
            )
            entry["_runs"][r.run_id] = r  # a node run in several steps: its last step counts (rows are in order)
        out = []
        for entry in by_model.values():
            executions = list(entry.pop("_runs").values())
            times = [float(e.execution_time_s) for e in executions if e.execution_time_s is not None]
            last = executions[-1]
            entry.update(
                runs=len(executions),
                failures=sum(1 for e in executions if e.status in FAILED_STATUSES),
                total_s=sum(times),
                **_figures(times),
                last={
                    "run_id": last.run_id,
                    "environment": last.environment,
                    "status": last.status,
                    "execution_time_s": last.execution_time_s,
                    "rows_affected": last.rows_affected,
                    "finished_at": last.finished_at,
                },
            )
            out.append(entry)
        out.sort(key=lambda e: (-e["total_s"], e["unique_id"]))
        return out[: _clamp(limit, 1, MAX_LIMIT)]

    def model(self, unique_id: str, *, environment: str | None = None, limit: int = 30) -> dict[str, Any]:
        """One model's last ``limit`` executions (newest first) and their figures."""
        history = self._reader.model_history(unique_id, environment=environment, limit=_clamp(limit, 1, MAX_LIMIT))
        times = [float(h["execution_time_s"]) for h in history if h["execution_time_s"] is not None]
        return {"unique_id": unique_id, "history": history, **_figures(times)}

    def tests(
        self, *, job: str | None = None, environment: str | None = None, days: int = 7, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Per test executed in the last ``days`` days: pass / fail / warn / error / skipped
        counts and the failure rate ((fail + error) / executions); the worst first."""
        since = clock.now() - timedelta(days=_clamp(days, 1, MAX_DAYS))
        per: dict[str, dict[str, Any]] = {}
        for unique_id, name, status, n in self._reader.test_counts(since=since, job=job, environment=environment):
            entry = per.setdefault(
                unique_id,
                {"unique_id": unique_id, "name": name, "pass": 0, "fail": 0, "warn": 0, "error": 0, "skipped": 0},
            )
            key = "error" if status == "runtime error" else status
            entry[key] = entry.get(key, 0) + n
        out = []
        for entry in per.values():
            total = sum(v for k, v in entry.items() if k not in ("unique_id", "name"))
            entry["executions"] = total
            entry["failure_rate"] = (entry["fail"] + entry["error"]) / total if total else 0.0
            out.append(entry)
        out.sort(key=lambda e: (-e["failure_rate"], -e["executions"], e["unique_id"]))
        return out[: _clamp(limit, 1, MAX_LIMIT)]

    def jobs(self, *, environment: str | None = None, days: int = 7) -> list[dict[str, Any]]:
        """Per (job, environment) of the runs created in the last ``days`` days: counts by
        status, run duration figures (final runs) and queue time figures (started runs)."""
        since = clock.now() - timedelta(days=_clamp(days, 1, MAX_DAYS))
        per: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self._reader.run_rows(since=since, environment=environment):
            entry = per.setdefault(
                (r.job_name, r.environment),
                {"job": r.job_name, "environment": r.environment, "runs": 0, "by_status": {}, "_d": [], "_q": []},
            )
            entry["runs"] += 1
            entry["by_status"][r.status] = entry["by_status"].get(r.status, 0) + 1
            if r.started_at is not None and r.finished_at is not None:
                entry["_d"].append((r.finished_at - r.started_at).total_seconds())
            queued = r.queued_at or r.created_at
            if r.started_at is not None and queued is not None:
                entry["_q"].append(max(0.0, (r.started_at - queued).total_seconds()))
        out = []
        for (_, _), entry in sorted(per.items()):
            entry["duration"] = _figures(entry.pop("_d"))
            entry["queue_wait"] = _figures(entry.pop("_q"))
            out.append(entry)
        return out

    def freshness(self) -> list[dict[str, Any]]:
        """The latest freshness of each source (``app.freshness.latest()``), as dicts with at
        least ``unique_id``, ``environment``, ``status`` and ``age_s`` (the age now); [] without it."""
        service = getattr(self.app, "freshness", None)
        latest = getattr(service, "latest", None)
        if latest is None:
            return []
        out = []
        for item in latest() or []:
            data = item if isinstance(item, dict) else getattr(item, "__dict__", {})
            out.append(
                {
                    "unique_id": data.get("unique_id") or data.get("source"),
                    "environment": data.get("environment"),
                    "status": data.get("status"),
                    "age_s": data.get("age_now_seconds", data.get("age_seconds")),
                }
            )
        return out


class DurationCounter(Sink):
    """The built-in consumer ``dockyard.metrics``: when a run ends, its models' execution
    times are added to the store's model duration histogram (``store.metric_state.count_run``,
    once per run), which ``/metrics`` reads without scanning the history. Always on."""

    def __init__(self, app):
        # a dockyard.app.consumers.Consumer, built as one (not imported: consumers imports
        # this module's factory, and the import graph stays without a cycle)
        super().__init__("dockyard.metrics", {}, SinkContext(app.loaded.base_dir, app.state_dir, app.loaded.path))
        self.app = app

    def deliver(self, event: Event) -> None:
        if RunEvent(event.type).is_final and event.run_id is not None:
            self.app.store.metric_state.count_run(event.run_id)


def factory(app) -> DurationCounter:
    return DurationCounter(app)
