"""Read side of the run store: runs with their steps, nodes and artifacts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.engine import Connection

from dockyard.domain import RunStatus
from dockyard.errors import DockyardError
from dockyard.store import records as rec
from dockyard.store.base import Repository, run_not_found
from dockyard.store.records import StoredRun
from dockyard.store.tables import artifacts, node_results, run_steps, runs

JobFilter = int | str | None
StatusFilter = RunStatus | str | Sequence[RunStatus | str] | None


class RunQueries(Repository):
    """Reads of runs (part of :class:`dockyard.store.runs.RunReader`)."""

    def failed_without_retry(self, since: datetime, until: datetime) -> list[int]:
        """Ids of runs that workers executed (``claimed_at`` set: not foreground runs), that
        ended ``error`` between ``since`` and ``until``, and that no run retries yet."""
        child = runs.alias("child")
        stmt = (
            select(runs.c.id)
            .where(
                runs.c.status == RunStatus.ERROR.value,
                runs.c.claimed_at.is_not(None),
                runs.c.finished_at >= since,
                runs.c.finished_at < until,
                ~select(child.c.id).where(child.c.retry_of == runs.c.id).exists(),
            )
            .order_by(runs.c.id)
        )
        with self.db.read() as conn:
            return list(conn.execute(stmt).scalars())

    def get_run(self, run_id: int) -> StoredRun:
        """A run with its steps, nodes and artifacts; raises :class:`NotFoundError`."""
        with self.db.read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                raise run_not_found(conn, run_id)
            run = rec.run_record(row)
            run.steps = self._steps(conn, [run_id]).get(run_id, [])
            run.nodes = [
                rec.node_result(r)
                for r in conn.execute(
                    select(node_results)
                    .where(node_results.c.run_id == run_id)
                    .order_by(
                        node_results.c.step_index, node_results.c.started_at.asc().nulls_last(), node_results.c.id
                    )
                ).mappings()
            ]
            run.artifacts = RunQueries._artifacts(conn, run_id)
        return run

    def list_runs(
        self,
        *,
        job: JobFilter = None,
        status: StatusFilter = None,
        limit: int | None = 20,
        offset: int = 0,
        order: str = "desc",
    ) -> list[StoredRun]:
        """Runs (with steps, without nodes/artifacts), newest first unless ``order="asc"``.

        ``job`` is a job id (int) or job name (str); ``status`` one status or several.
        """
        if order not in ("asc", "desc"):
            raise DockyardError(f"Unknown order {order!r}", hint="use 'asc' or 'desc'")
        if (limit is not None and limit < 0) or offset < 0:
            raise DockyardError("limit and offset must not be negative")
        query = (
            select(runs)
            .where(*_filters(job, status))
            .order_by(runs.c.id.desc() if order == "desc" else runs.c.id.asc())
            .limit(limit)
            .offset(offset or None)
        )
        with self.db.read() as conn:
            found = [rec.run_record(row) for row in conn.execute(query).mappings()]
            steps = self._steps(conn, [r.id for r in found])
        for run in found:
            run.steps = steps.get(run.id, [])
        return found

    def count_runs(self, *, job: JobFilter = None, status: StatusFilter = None) -> int:
        query = select(func.count()).select_from(runs).where(*_filters(job, status))
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def latest_run(self, job_id: int, status: StatusFilter = None) -> StoredRun | None:
        """The newest run of a job (optionally with one of ``status``), or ``None``."""
        found = self.list_runs(job=job_id, status=status, limit=1)
        return found[0] if found else None

    @staticmethod
    def _artifacts(conn: Connection, run_id: int) -> list:
        """The run's artifacts, by step and name."""
        query = select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.step_index, artifacts.c.name)
        return [rec.artifact_ref(r) for r in conn.execute(query).mappings()]

    @staticmethod
    def _steps(conn: Connection, run_ids: list[int]) -> dict[int, list]:
        steps: dict[int, list] = {}
        for chunk in _chunks(run_ids, 500):
            query = (
                select(run_steps)
                .where(run_steps.c.run_id.in_(chunk))
                .order_by(run_steps.c.run_id, run_steps.c["index"])
            )
            for row in conn.execute(query).mappings():
                steps.setdefault(row["run_id"], []).append(rec.step_result(row))
        return steps


def _filters(job: JobFilter, status: StatusFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if isinstance(job, bool):
        raise TypeError("job must be a job id or name")
    if isinstance(job, int):
        conds.append(runs.c.job_id == job)
    elif job is not None:
        conds.append(runs.c.job_name == job)
    if status is not None:
        statuses: Any = [status] if isinstance(status, str | RunStatus) else status
        conds.append(runs.c.status.in_([rec.run_status(s).value for s in statuses]))
    return conds


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
