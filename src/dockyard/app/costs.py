"""The cost report, service ``app.costs``: which models take the warehouse's time (and bytes).

``report()`` ranks the models (seeds and snapshots too) executed in the window by total
warehouse time, and by bytes processed / billed where the adapter reports them in its
``adapter_response`` (BigQuery ``bytes_processed``, ``bytes_billed``, ``slot_ms``; other
adapters report no bytes: DuckDB and PostgreSQL give ``_message``/``code``, Snowflake a
``query_id``). Each model has a trend: the least-squares slope of its execution time per day.
The *incremental candidates* are the models materialized as ``table`` (a full rebuild every
run) whose runtime grows, fastest first. The materialization is not part of a node's result:
it is read from the ``manifest.json`` artifact of the newest successful run of the
environment that kept one (no manifest: no candidates, ``materializations_from`` None).
"""

from __future__ import annotations

import json
import logging
import statistics
from datetime import datetime, timedelta
from typing import Any

from dockyard import clock
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.app.costs")
BYTES = ("bytes_processed", "bytes_billed", "slot_ms")
MIN_TREND_POINTS = 3  # executions on at least 2 days
MANIFEST_MAX_BYTES = 200 * 1024 * 1024


def slope_per_day(points: list[tuple[datetime, float]]) -> float | None:
    """The least-squares slope (seconds per day) of ``(when, seconds)`` points; None with
    fewer than :data:`MIN_TREND_POINTS` points or all on one day."""
    if len(points) < MIN_TREND_POINTS:
        return None
    t0 = min(p[0] for p in points)
    xs = [(p[0] - t0).total_seconds() / 86400.0 for p in points]
    ys = [p[1] for p in points]
    if max(xs) - min(xs) < 1.0:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Costs:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    def report(self, environment: str | None = None, days: int = 30, *, limit: int = 50) -> dict[str, Any]:
        """``{"environment", "days", "since", "models": [...] (by total time),
        "by_bytes": [...] (only where bytes are known), "incremental_candidates": [...],
        "materializations_from": run id | None}``; each model: unique_id, name,
        resource_type, environment(s), runs, total_s, mean_s, last_s, slope_s_per_day,
        bytes_processed / bytes_billed / slot_ms (sums, None when unknown), materialized."""
        days = max(1, min(365, int(days)))
        limit = max(1, min(1000, int(limit)))
        since = clock.now() - timedelta(days=days)
        rows = self.app.store.reader.metrics.node_rows(since=since, environment=environment)
        per: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = per.setdefault(
                r.unique_id,
                {
                    "unique_id": r.unique_id,
                    "name": r.name,
                    "resource_type": r.resource_type,
                    "environments": set(),
                    "_runs": {},
                },
            )
            entry["environments"].add(r.environment)
            entry["_runs"][r.run_id] = r
        materialized, manifest_run = self._materializations(environment)
        models = []
        for entry in per.values():
            executions = list(entry.pop("_runs").values())
            timed = [(e.finished_at, float(e.execution_time_s)) for e in executions if e.execution_time_s is not None]
            sums: dict[str, float | None] = dict.fromkeys(BYTES)
            for e in executions:
                response = e.adapter_response if isinstance(e.adapter_response, dict) else {}
                for key in BYTES:
                    value = _number(response.get(key))
                    if value is not None:
                        sums[key] = (sums[key] or 0.0) + value
            total = sum(t for _, t in timed)
            entry.update(
                environments=sorted(entry["environments"]),
                runs=len(executions),
                total_s=total,
                mean_s=total / len(timed) if timed else None,
                last_s=timed[-1][1] if timed else None,
                slope_s_per_day=slope_per_day(timed),
                materialized=materialized.get(entry["unique_id"]),
                **sums,
            )
            models.append(entry)
        models.sort(key=lambda m: (-m["total_s"], m["unique_id"]))
        by_bytes = sorted(
            (m for m in models if m["bytes_processed"] is not None or m["bytes_billed"] is not None),
            key=lambda m: (-(m["bytes_billed"] or m["bytes_processed"] or 0), m["unique_id"]),
        )
        candidates = sorted(
            (
                m
                for m in models
                if m["resource_type"] == "model" and m["materialized"] == "table" and (m["slope_s_per_day"] or 0) > 0
            ),
            key=lambda m: (-m["slope_s_per_day"], m["unique_id"]),
        )
        return {
            "environment": environment,
            "days": days,
            "since": since,
            "models": models[:limit],
            "by_bytes": by_bytes[:limit],
            "incremental_candidates": candidates[:limit],
            "materializations_from": manifest_run,
        }

    def _materializations(self, environment: str | None) -> tuple[dict[str, str], int | None]:
        """``unique_id -> materialized`` from the newest successful run's manifest.json."""
        try:
            found, _ = self.app.runs.search(
                statuses=["success"], environments=[environment] if environment else None, limit=20
            )
        except DockyardError as exc:
            log.warning("cost report: runs not read: %s", exc.what)
            return {}, None
        for run in found:
            try:
                artifacts = [a for a in self.app.runs.artifacts(run.id) if a.name == "manifest.json"]
                if not artifacts:
                    continue
                path = self.app.runs.artifact_path(run.id, sorted(artifacts, key=lambda a: a.step_index)[-1].path)
                if not path.is_file() or path.stat().st_size > MANIFEST_MAX_BYTES:
                    continue
                nodes = json.loads(path.read_bytes()).get("nodes") or {}
            except (DockyardError, OSError, ValueError) as exc:
                log.warning("cost report: manifest of run %s not read: %s", run.id, exc)
                continue
            return {
                uid: str((node.get("config") or {}).get("materialized"))
                for uid, node in nodes.items()
                if isinstance(node, dict) and (node.get("config") or {}).get("materialized")
            }, run.id
        return {}, None
