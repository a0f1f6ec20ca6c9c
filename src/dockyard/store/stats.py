"""Figures over many runs for the UI: model durations over time, test results per run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from dockyard.domain import COMPILED, FAILED_STATUSES, RunStatus
from dockyard.store.base import Repository
from dockyard.store.tables import node_results, runs

FINAL = (RunStatus.SUCCESS.value, RunStatus.ERROR.value, RunStatus.CANCELLED.value)
TEST_TYPES = ("test", "unit_test")


class Stats(Repository):
    def _recent_final_runs(self, conn, job_id: int | None, environment: str | None, runs_limit: int):
        query = select(
            runs.c.id, runs.c.job_id, runs.c.job_name, runs.c.environment, runs.c.status, runs.c.finished_at
        ).where(runs.c.status.in_(FINAL))
        if job_id is not None:
            query = query.where(runs.c.job_id == job_id)
        if environment is not None:
            query = query.where(runs.c.environment == environment)
        return conn.execute(query.order_by(runs.c.id.desc()).limit(runs_limit)).all()

    def model_durations(
        self,
        *,
        job_id: int | None = None,
        environment: str | None = None,
        unique_ids: list[str] | None = None,
        runs_limit: int = 30,
        resource_types: tuple[str, ...] = ("model",),
    ) -> list[dict[str, Any]]:
        """Execution time of each node in the last ``runs_limit`` final runs, oldest run first:
        ``[{"unique_id", "name", "resource_type", "points": [{"run_id", "finished_at",
        "execution_time_s", "status"}]}]``."""
        with self.db.read() as conn:
            recent = self._recent_final_runs(conn, job_id, environment, runs_limit)
            if not recent:
                return []
            finished = {r.id: r.finished_at for r in recent}
            query = (
                select(
                    node_results.c.run_id,
                    node_results.c.unique_id,
                    node_results.c.name,
                    node_results.c.resource_type,
                    node_results.c.status,
                    node_results.c.execution_time_s,
                )
                .where(
                    node_results.c.run_id.in_(list(finished)),
                    node_results.c.resource_type.in_(resource_types),
                    node_results.c.status != COMPILED,  # executions only, not docs generate's compiles
                )
                .order_by(node_results.c.unique_id, node_results.c.run_id, node_results.c.step_index)
            )
            if unique_ids:
                query = query.where(node_results.c.unique_id.in_(unique_ids))
            rows = conn.execute(query).all()
        series: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = series.setdefault(
                row.unique_id,
                {"unique_id": row.unique_id, "name": row.name, "resource_type": row.resource_type, "points": []},
            )
            points = entry["points"]
            point = {
                "run_id": row.run_id,
                "finished_at": finished[row.run_id],
                "execution_time_s": row.execution_time_s,
                "status": row.status,
            }
            if points and points[-1]["run_id"] == row.run_id:  # the node ran in several steps: keep the last
                points[-1] = point
            else:
                points.append(point)
        return list(series.values())

    def test_results(
        self, *, job_id: int | None = None, environment: str | None = None, runs_limit: int = 30
    ) -> list[dict[str, Any]]:
        """Per final run (newest first): how many tests passed, failed, warned, errored, were
        skipped, and the failing tests' ids."""
        with self.db.read() as conn:
            recent = self._recent_final_runs(conn, job_id, environment, runs_limit)
            if not recent:
                return []
            ids = [r.id for r in recent]
            counts = conn.execute(
                select(node_results.c.run_id, node_results.c.status, func.count())
                .where(
                    node_results.c.run_id.in_(ids),
                    node_results.c.resource_type.in_(TEST_TYPES),
                    node_results.c.status != COMPILED,  # tests compiled by docs generate did not run
                )
                .group_by(node_results.c.run_id, node_results.c.status)
            ).all()
            failing = conn.execute(
                select(node_results.c.run_id, node_results.c.unique_id)
                .where(
                    node_results.c.run_id.in_(ids),
                    node_results.c.resource_type.in_(TEST_TYPES),
                    node_results.c.status.in_(sorted(FAILED_STATUSES)),
                )
                .order_by(node_results.c.run_id, node_results.c.unique_id)
            ).all()
        out = {
            r.id: {
                "run_id": r.id,
                "job_id": r.job_id,
                "job": r.job_name,
                "environment": r.environment,
                "status": r.status,
                "finished_at": r.finished_at,
                "counts": {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skipped": 0},
                "failing": [],
            }
            for r in recent
        }
        for run_id, status, n in counts:
            key = "error" if status == "runtime error" else status
            bucket = out[run_id]["counts"]
            bucket[key] = bucket.get(key, 0) + n
        for run_id, unique_id in failing:
            out[run_id]["failing"].append(unique_id)
        return [out[i] for i in ids]
