"""Jobs created through the API (``jobs.source = 'api'``): dockyard.yml syncs leave them alone."""

from __future__ import annotations

from sqlalchemy import select, update

from dockyard import clock
from dockyard.domain import JobRecord
from dockyard.errors import ConflictError, NotFoundError
from dockyard.store import records as rec
from dockyard.store.base import Repository
from dockyard.store.tables import jobs


class ApiJobOps(Repository):
    """Creating, changing and deleting API jobs (part of :class:`dockyard.store.jobs.Jobs`)."""

    def create_api_job(
        self, name: str, environment: str, definition: dict, *, cron: str | None = None, timezone: str = "UTC"
    ) -> JobRecord:
        now = clock.now()
        with self.db.write() as conn:
            if conn.execute(select(jobs.c.id).where(jobs.c.name == name)).first():
                raise ConflictError(f"a job named {name!r} exists", hint="pick another name")
            job_id = conn.execute(
                jobs.insert().values(
                    name=name,
                    environment=environment,
                    cron=cron,
                    timezone=timezone,
                    definition=rec.jsonable(definition),
                    active=True,
                    source="api",
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one()
        return rec.job_record(row)

    def update_api_job(
        self,
        job_id: int,
        name: str,
        environment: str,
        definition: dict,
        *,
        cron: str | None = None,
        timezone: str = "UTC",
    ) -> JobRecord:
        now = clock.now()
        with self.db.write() as conn:
            clash = conn.execute(select(jobs.c.id).where(jobs.c.name == name, jobs.c.id != job_id)).first()
            if clash:
                raise ConflictError(f"another job is named {name!r}", hint="pick another name")
            changed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.source == "api", jobs.c.active.is_(True))
                .values(
                    name=name,
                    environment=environment,
                    cron=cron,
                    timezone=timezone,
                    definition=rec.jsonable(definition),
                    updated_at=now,
                )
            ).rowcount
            if not changed:
                raise NotFoundError(f"Job {job_id} not found")
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one()
        return rec.job_record(row)

    def delete_api_job(self, job_id: int) -> JobRecord:
        """Soft delete: the job becomes inactive (its id and runs are kept) and its name is
        freed; returns the job as it was."""
        now = clock.now()
        with self.db.write() as conn:
            row = (
                conn.execute(select(jobs).where(jobs.c.id == job_id, jobs.c.source == "api", jobs.c.active.is_(True)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"Job {job_id} not found")
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(active=False, name=f"{row['name'][:170]} ~deleted~{job_id}", updated_at=now)
            )
        return rec.job_record(row)
