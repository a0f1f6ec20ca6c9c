"""Reads and marks for job-completion triggers (``triggers.after``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from dockyard import clock
from dockyard.domain import RunStatus
from dockyard.store import records as rec
from dockyard.store.base import Repository
from dockyard.store.records import StoredRun
from dockyard.store.tables import fires, runs

FINAL = (RunStatus.SUCCESS.value, RunStatus.ERROR.value, RunStatus.CANCELLED.value)


class TriggerOps(Repository):
    def last_completion_fire(self, job_id: int) -> datetime | None:
        """When the job was last fired by ``triggers.after`` (or first watched), else None."""
        with self.db.read() as conn:
            return conn.execute(
                select(func.max(fires.c.created_at)).where(fires.c.job_id == job_id, fires.c.fire_key.like("after:%"))
            ).scalar()

    def last_completion_fires(self, job_ids: list[int]) -> dict[int, datetime]:
        """:meth:`last_completion_fire` of many jobs in one query (jobs never watched are absent)."""
        if not job_ids:
            return {}
        with self.db.read() as conn:
            return dict(
                conn.execute(
                    select(fires.c.job_id, func.max(fires.c.created_at))
                    .where(fires.c.job_id.in_(sorted(set(job_ids))), fires.c.fire_key.like("after:%"))
                    .group_by(fires.c.job_id)
                ).all()
            )

    def mark_fires(self, job_ids: list[int], fire_key: str, at: datetime | None = None) -> None:
        """:meth:`mark_fire` for many jobs, in one statement."""
        if not job_ids:
            return
        at = at or clock.now()
        stmt = self.db.insert(fires).on_conflict_do_nothing()
        with self.db.write() as conn:
            conn.execute(stmt, [{"job_id": j, "fire_key": fire_key, "created_at": at} for j in sorted(set(job_ids))])

    def mark_fire(self, job_id: int, fire_key: str, at: datetime | None = None) -> bool:
        """Record a fire that starts no run (e.g. the baseline of a completion trigger)."""
        stmt = self.db.insert(fires).values(job_id=job_id, fire_key=fire_key, created_at=at or clock.now())
        with self.db.write() as conn:  # RETURNING: rowcount of ON CONFLICT DO NOTHING is unreliable
            return conn.execute(stmt.on_conflict_do_nothing().returning(fires.c.id)).first() is not None

    def final_runs_since(self, job_name: str, since: datetime | None, limit: int = 50) -> list[StoredRun]:
        """Final runs of a job that finished after ``since``, newest first."""
        query = select(runs).where(runs.c.job_name == job_name, runs.c.status.in_(FINAL))
        if since is not None:
            query = query.where(runs.c.finished_at > since)
        with self.db.read() as conn:
            return [
                rec.run_record(r)
                for r in conn.execute(
                    query.order_by(runs.c.finished_at.desc(), runs.c.id.desc()).limit(limit)
                ).mappings()
            ]
