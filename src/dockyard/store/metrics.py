"""Run metrics read from the store: model histories and summaries, test rates, runs by job,
the figures of the cost report and the aggregates Prometheus scrapes.

Every query is bounded (a window, a limit, or a GROUP BY over bounded labels) and goes
through an index: node results by ``(unique_id, run_id)`` or ``run_id``, runs by
``finished_at`` or ``status``. Nodes a step only compiled (status ``compiled``) are never
counted: metrics are about executions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, case, cast, extract, func, literal_column, select

from dockyard.domain import COMPILED, FAILED_STATUSES
from dockyard.store import tables
from dockyard.store.base import Repository
from dockyard.store.stats import FINAL, TEST_TYPES
from dockyard.store.tables import node_results, processes, runs

nr = node_results
BUILT = ("model", "seed", "snapshot")
CHUNK = 500  # ids per IN list
MODEL_BUCKETS = tables.MODEL_BUCKETS  # of the model duration histogram (count_run writes it)


def seconds(dialect: str, start, end):
    """``end - start`` in seconds as a SQL expression on SQLite or PostgreSQL."""
    if dialect == "postgresql":
        return cast(extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * literal_column("86400.0")


def _buckets(expr, bounds: Sequence[float]) -> list:
    return [func.sum(case((expr <= b, 1), else_=0)).label(f"le_{i}") for i, b in enumerate(bounds)]


class Metrics(Repository):
    """Read-only figures over many runs (also reachable through ``store.reader``)."""

    # -- the metrics API --------------------------------------------------------------------
    def model_history(self, unique_id: str, *, environment: str | None = None, limit: int = 30) -> list[dict]:
        """The last ``limit`` executions of one node (newest first): run, job, environment,
        status, execution time, rows affected, adapter response, finished_at."""
        query = (
            select(
                nr.c.run_id,
                runs.c.job_name,
                runs.c.environment,
                nr.c.step_index,
                nr.c.status,
                nr.c.execution_time_s,
                nr.c.rows_affected,
                nr.c.adapter_response,
                nr.c.finished_at,
                runs.c.finished_at.label("run_finished_at"),
            )
            .select_from(nr.join(runs, runs.c.id == nr.c.run_id))
            .where(nr.c.unique_id == unique_id, nr.c.status != COMPILED, nr.c.status != "started")
            .order_by(nr.c.run_id.desc(), nr.c.step_index.desc())
            .limit(limit * 3)
        )
        if environment is not None:
            query = query.where(runs.c.environment == environment)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        out: list[dict] = []
        for r in rows:  # a node run in several steps of one run: its last step counts
            if out and out[-1]["run_id"] == r.run_id:
                continue
            out.append(
                {
                    "run_id": r.run_id,
                    "job": r.job_name,
                    "environment": r.environment,
                    "status": r.status,
                    "execution_time_s": r.execution_time_s,
                    "rows_affected": r.rows_affected,
                    "adapter_response": r.adapter_response,
                    "finished_at": r.finished_at or r.run_finished_at,  # the node's, else its run's
                }
            )
        return out[:limit]

    def node_rows(
        self,
        *,
        since: datetime,
        job: str | None = None,
        environment: str | None = None,
        resource_types: Sequence[str] = BUILT,
        limit: int = 200_000,
    ) -> list[Any]:
        """Executed node results of the final runs finished since ``since`` (oldest first):
        unique_id, name, resource_type, status, execution_time_s, rows_affected,
        adapter_response, run_id, environment, finished_at (the run's)."""
        query = (
            select(
                nr.c.unique_id,
                nr.c.name,
                nr.c.resource_type,
                nr.c.status,
                nr.c.execution_time_s,
                nr.c.rows_affected,
                nr.c.adapter_response,
                nr.c.run_id,
                runs.c.environment,
                runs.c.job_name,
                runs.c.finished_at,
            )
            .select_from(runs.join(nr, nr.c.run_id == runs.c.id))
            .where(
                runs.c.finished_at >= since,
                runs.c.status.in_(FINAL),
                nr.c.resource_type.in_(list(resource_types)),
                nr.c.status != COMPILED,
                nr.c.status != "started",
            )
            .order_by(runs.c.finished_at, nr.c.run_id, nr.c.step_index)
            .limit(limit)
        )
        if job is not None:
            query = query.where(runs.c.job_name == job)
        if environment is not None:
            query = query.where(runs.c.environment == environment)
        with self.db.read() as conn:
            return list(conn.execute(query).all())

    def test_counts(
        self, *, since: datetime, job: str | None = None, environment: str | None = None, limit: int = 5000
    ) -> list[tuple[str, str, str, int]]:
        """``(unique_id, name, status, count)`` of the tests executed in final runs since ``since``."""
        query = (
            select(nr.c.unique_id, func.max(nr.c.name), nr.c.status, func.count())
            .select_from(runs.join(nr, nr.c.run_id == runs.c.id))
            .where(
                runs.c.finished_at >= since,
                runs.c.status.in_(FINAL),
                nr.c.resource_type.in_(TEST_TYPES),
                nr.c.status != COMPILED,
                nr.c.status != "started",
            )
            .group_by(nr.c.unique_id, nr.c.status)
            .order_by(nr.c.unique_id)
            .limit(limit)
        )
        if job is not None:
            query = query.where(runs.c.job_name == job)
        if environment is not None:
            query = query.where(runs.c.environment == environment)
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(query).all()]

    def run_rows(self, *, since: datetime, environment: str | None = None, limit: int = 20_000) -> list[Any]:
        """Runs created since ``since`` (newest first): job, environment, status, trigger,
        created/queued/started/finished times."""
        query = (
            select(
                runs.c.id,
                runs.c.job_name,
                runs.c.environment,
                runs.c.status,
                runs.c.trigger,
                runs.c.created_at,
                runs.c.queued_at,
                runs.c.started_at,
                runs.c.finished_at,
            )
            .where(runs.c.created_at >= since)
            .order_by(runs.c.id.desc())
            .limit(limit)
        )
        if environment is not None:
            query = query.where(runs.c.environment == environment)
        with self.db.read() as conn:
            return list(conn.execute(query).all())

    # -- Prometheus (scrape time) -------------------------------------------------------------
    def run_totals(self) -> list[tuple[str, str, str, int]]:
        """``(job, environment, status, count)`` of final runs."""
        query = (
            select(runs.c.job_name, runs.c.environment, runs.c.status, func.count())
            .where(runs.c.status.in_(FINAL))
            .group_by(runs.c.job_name, runs.c.environment, runs.c.status)
        )
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(query).all()]

    def run_duration_buckets(self, bounds: Sequence[float]) -> list[dict]:
        """Per (job, status) of final runs: count, sum of durations and the cumulative bucket
        counts (``le``: one per bound)."""
        dur = seconds(self.db.dialect, runs.c.started_at, runs.c.finished_at)
        query = (
            select(runs.c.job_name, runs.c.status, func.count(), func.sum(dur), *_buckets(dur, bounds))
            .where(runs.c.status.in_(FINAL), runs.c.started_at.is_not(None), runs.c.finished_at.is_not(None))
            .group_by(runs.c.job_name, runs.c.status)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [{"labels": (r[0], r[1]), "count": r[2], "sum": float(r[3] or 0), "le": list(r[4:])} for r in rows]

    def queue_wait_buckets(self, bounds: Sequence[float]) -> list[dict]:
        """Per environment, of the runs that started: started_at - queued_at (created_at when
        not queued) as count, sum and cumulative buckets."""
        wait = seconds(self.db.dialect, func.coalesce(runs.c.queued_at, runs.c.created_at), runs.c.started_at)
        query = (
            select(runs.c.environment, func.count(), func.sum(wait), *_buckets(wait, bounds))
            .where(runs.c.started_at.is_not(None))
            .group_by(runs.c.environment)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [{"labels": (r[0],), "count": r[1], "sum": float(r[2] or 0), "le": list(r[3:])} for r in rows]

    def model_duration_buckets(self, models: int) -> list[dict]:
        """Per (model, environment), for the ``models`` models run most recently: count, sum
        and cumulative bucket counts (bounds :data:`tables.MODEL_BUCKETS`) of their execution
        times, as counted when their runs ended (``model_durations``: one row per pair, so a
        scrape reads at most ``models`` x environments rows, whatever the history)."""
        if models <= 0:
            return []
        t = tables.model_durations
        buckets = [t.c[f"b{i:02d}"] for i in range(len(tables.MODEL_BUCKETS))]
        with self.db.read() as conn:
            recent = (
                select(t.c.unique_id)
                .group_by(t.c.unique_id)
                .order_by(func.max(t.c.last_run_id).desc(), t.c.unique_id)
                .limit(models)
                .subquery()
            )
            rows = conn.execute(
                select(t.c.unique_id, t.c.environment, t.c["count"], t.c["sum"], *buckets)
                .where(t.c.unique_id.in_(select(recent.c.unique_id)))
                .order_by(t.c.unique_id, t.c.environment)
            ).all()
        return [{"labels": (r[0], r[1]), "count": r[2], "sum": float(r[3] or 0), "le": list(r[4:])} for r in rows]

    def test_failure_totals(self) -> list[tuple[str, int]]:
        """``(environment, count)`` of failed or erroring test executions."""
        query = (
            select(runs.c.environment, func.count())
            .select_from(nr.join(runs, runs.c.id == nr.c.run_id))
            .where(nr.c.resource_type.in_(TEST_TYPES), nr.c.status.in_(sorted(FAILED_STATUSES)))
            .group_by(runs.c.environment)
        )
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(query).all()]

    def live_workers(self, since: datetime) -> list[tuple[str, datetime]]:
        """``(id, heartbeat_at)`` of the worker processes not stopped that heartbeated since ``since``."""
        query = (
            select(processes.c.id, processes.c.heartbeat_at)
            .where(
                processes.c.kind == "worker",
                processes.c.stopped_at.is_(None),
                and_(processes.c.heartbeat_at >= since),
            )
            .order_by(processes.c.id)
            .limit(1000)
        )
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(query).all()]

    def notification_totals(self) -> list[tuple[str, str, int]]:
        """``(channel_type, status, count)`` of the alert deliveries (ALERTS's table), [] without it."""
        table = getattr(tables, "notifications", None)
        if table is None:
            return []
        query = select(table.c.channel_type, table.c.status, func.count()).group_by(
            table.c.channel_type, table.c.status
        )
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(query).all()]
