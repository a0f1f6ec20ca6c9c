"""Run searches for the API: filters, ordering, counts, and a run without its node results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select

from dockyard.errors import DockyardError
from dockyard.store import records as rec
from dockyard.store.base import Repository, run_not_found
from dockyard.store.queries import RunQueries
from dockyard.store.records import StoredRun
from dockyard.store.tables import runs

#: ``order_by`` names accepted (dbt Cloud's names included) → run columns
ORDER_COLUMNS = {
    "id": "id",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "dequeued_at": "claimed_at",
    "status": "status_code",
    "job_definition_id": "job_id",
    "job_id": "job_id",
    "environment_id": "environment",
    "environment": "environment",
    "attempt": "attempt",
}


@dataclass
class RunSearch:
    job_ids: list[int] | None = None
    statuses: list[str] | None = None  # dockyard status names
    environments: list[str] | None = None
    triggers: list[str] | None = None
    created: tuple[datetime | None, datetime | None] | None = None
    finished: tuple[datetime | None, datetime | None] | None = None
    before_id: int | None = None  # cursor: only runs with a smaller id
    after_id: int | None = None
    order_by: str = "-id"
    limit: int = 100
    offset: int = 0
    with_steps: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def order(self) -> list[Any]:
        name = self.order_by.strip() or "-id"
        desc = name.startswith("-")
        column = ORDER_COLUMNS.get(name.lstrip("-+"))
        if column is None:
            raise DockyardError(
                f"cannot order runs by {name!r}",
                hint="use one of " + ", ".join(sorted(ORDER_COLUMNS)) + ", with - for descending",
            )
        col = runs.c[column]
        primary = col.desc().nulls_last() if desc else col.asc().nulls_last()
        tie = runs.c.id.desc() if desc else runs.c.id.asc()
        return [primary] if column == "id" else [primary, tie]


def _conditions(s: RunSearch) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if s.job_ids is not None:
        conds.append(runs.c.job_id.in_(s.job_ids))
    if s.statuses is not None:
        conds.append(runs.c.status.in_([rec.run_status(x).value for x in s.statuses]))
    if s.environments is not None:
        conds.append(runs.c.environment.in_(s.environments))
    if s.triggers is not None:
        conds.append(runs.c.trigger.in_(s.triggers))
    for column, bounds in ((runs.c.created_at, s.created), (runs.c.finished_at, s.finished)):
        if bounds:
            start, end = bounds
            if start is not None:
                conds.append(column >= start)
            if end is not None:
                conds.append(column <= end)
    if s.before_id is not None:
        conds.append(runs.c.id < s.before_id)
    if s.after_id is not None:
        conds.append(runs.c.id > s.after_id)
    return conds


class RunSearchOps(Repository):
    def search_runs(self, s: RunSearch) -> tuple[list[StoredRun], int]:
        """The page of runs ``s`` asks for, and how many runs match in all."""
        conds = _conditions(s)
        query = select(runs).where(*conds).order_by(*s.order()).limit(s.limit).offset(s.offset or None)
        with self.db.read() as conn:
            found = [rec.run_record(row) for row in conn.execute(query).mappings()]
            total = int(conn.execute(select(func.count()).select_from(runs).where(*conds)).scalar_one())
            if s.with_steps and found:
                steps = RunQueries._steps(conn, [r.id for r in found])
                for run in found:
                    run.steps = steps.get(run.id, [])
        return found, total

    def get_run_summary(self, run_id: int, *, with_steps: bool | None = True) -> StoredRun:
        """A run with its steps and artifacts but not its node results (cheap to poll).
        ``with_steps=None``: the steps only of a run that failed or was cancelled."""
        with self.db.read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                raise run_not_found(conn, run_id)
            run = rec.run_record(row)
            if with_steps is None:
                with_steps = run.status.value in ("error", "cancelled")
            if with_steps:
                run.steps = RunQueries._steps(conn, [run_id]).get(run_id, [])
            run.artifacts = RunQueries._artifacts(conn, run_id)
        return run
