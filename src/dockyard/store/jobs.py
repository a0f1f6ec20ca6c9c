"""The jobs repository: environments, the jobs of dockyard.yml (synced) and API jobs."""

from __future__ import annotations

from sqlalchemy import select, update

from dockyard import clock
from dockyard.domain import JobRecord
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store import records as rec
from dockyard.store.api_jobs import ApiJobOps
from dockyard.store.base import Repository
from dockyard.store.tables import environments
from dockyard.store.tables import jobs as jobs_table


class JobReader(Repository):
    """Reading environments and jobs."""

    def list_environments(self) -> list[dict]:
        with self.db.read() as conn:
            result = conn.execute(select(environments).order_by(environments.c.name))
            return [dict(row) for row in result.mappings()]

    def list_jobs(self, active_only: bool = True) -> list[JobRecord]:
        query = select(jobs_table).order_by(jobs_table.c.name)
        if active_only:
            query = query.where(jobs_table.c.active.is_(True))
        with self.db.read() as conn:
            return [rec.job_record(row) for row in conn.execute(query).mappings()]

    def get_job(self, id_or_name: int | str) -> JobRecord:
        """A job (active or not) by id or name; raises :class:`NotFoundError`."""
        with self.db.read() as conn:
            row, query = None, select(jobs_table)
            if isinstance(id_or_name, str):
                row = conn.execute(query.where(jobs_table.c.name == id_or_name)).mappings().first()
            if row is None and (isinstance(id_or_name, int) or (id_or_name.isascii() and id_or_name.isdigit())):
                row = conn.execute(query.where(jobs_table.c.id == int(id_or_name))).mappings().first()
            if row is not None:
                return rec.job_record(row)
            known = list(
                conn.execute(
                    select(jobs_table.c.name).where(jobs_table.c.active.is_(True)).order_by(jobs_table.c.name).limit(11)
                ).scalars()
            )
        hint = (
            "known jobs: " + ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            if known
            else "no jobs are defined yet; add them to dockyard.yml"
        )
        raise NotFoundError(f"Job {id_or_name!r} not found", hint=hint)

    def job_source(self, job_id: int) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(jobs_table.c.source).where(jobs_table.c.id == job_id)).scalar()

    def job_rows(self, active_only: bool = True) -> list[dict]:
        """Jobs as rows (with ``source`` and timestamps), by id."""
        query = select(jobs_table).order_by(jobs_table.c.id)
        if active_only:
            query = query.where(jobs_table.c.active.is_(True))
        with self.db.read() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]


class Jobs(ApiJobOps, JobReader):
    """The jobs repository: reads, syncing environments and config jobs, API jobs."""

    def sync_environments(self, envs: list[dict]) -> None:
        """Insert or update environments by name (absent ones are left alone)."""
        if not envs:
            return
        now = clock.now()
        rows = [
            {
                "name": e["name"],
                "target": e.get("target") or e["name"],
                "schema": e.get("schema"),
                "threads": e.get("threads"),
                "created_at": now,
                "updated_at": now,
            }
            for e in envs
        ]
        stmt = self.db.insert(environments)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={c: stmt.excluded[c] for c in ("target", "schema", "threads", "updated_at")}
        )
        with self.db.read() as conn:  # unchanged (a restarted server): no write lock to wait for
            have = {
                r["name"]: r
                for r in conn.execute(
                    select(environments).where(environments.c.name.in_([r["name"] for r in rows]))
                ).mappings()
            }
        if all(
            r["name"] in have and all(have[r["name"]][k] == r[k] for k in ("target", "schema", "threads")) for r in rows
        ):
            return
        with self.db.write() as conn:
            conn.execute(stmt, rows)

    def sync_jobs(self, jobs: list[dict]) -> dict[str, int]:
        """Make the jobs table match ``jobs``; returns name → id.

        A job keeps its id as long as its name stays; jobs no longer present become
        inactive (their ids and runs are kept) and come back with the same id.
        """
        names = [j["name"] for j in jobs]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise DockyardError(f"Duplicate job names: {', '.join(dupes)}", hint="job names must be unique")
        now = clock.now()
        wanted = {
            j["name"]: {
                "name": j["name"],
                "environment": j["environment"],
                "cron": j.get("cron"),
                "timezone": j.get("timezone") or "UTC",
                "definition": rec.jsonable(j.get("definition") or {}),
                "active": True,
                "source": "config",
            }
            for j in jobs
        }
        with self.db.read() as conn:  # unchanged (a restarted server): no write lock to wait for
            stale = conn.execute(
                select(jobs_table.c.id)
                .where(jobs_table.c.active.is_(True), jobs_table.c.name.not_in(names), jobs_table.c.source == "config")
                .limit(1)
            ).first()
            existing = {
                row["name"]: row
                for row in conn.execute(select(jobs_table).where(jobs_table.c.name.in_(names))).mappings()
            }
        if stale is None and all(
            name in existing and all(existing[name][k] == v for k, v in row.items()) for name, row in wanted.items()
        ):
            return {name: existing[name]["id"] for name in names}
        with self.db.write() as conn:
            conn.execute(
                update(jobs_table)
                .where(
                    jobs_table.c.active.is_(True), jobs_table.c.name.not_in(names), jobs_table.c.source == "config"
                )  # API-created jobs are not in the file
                .values(active=False, updated_at=now)
            )
            existing = {
                row["name"]: row
                for row in conn.execute(select(jobs_table).where(jobs_table.c.name.in_(names))).mappings()
            }
            changed = [
                dict(row, created_at=now, updated_at=now)
                for name, row in wanted.items()
                if name not in existing or any(existing[name][k] != v for k, v in row.items())
            ]
            if changed:
                stmt = self.db.insert(jobs_table)
                keep = ("environment", "cron", "timezone", "definition", "active", "source", "updated_at")
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=["name"], set_={c: stmt.excluded[c] for c in keep}),
                    changed,
                )
            ids = dict(
                conn.execute(select(jobs_table.c.name, jobs_table.c.id).where(jobs_table.c.name.in_(names))).all()
            )
        return {name: ids[name] for name in names}
