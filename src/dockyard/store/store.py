"""The run store: the only API the rest of dockyard uses to persist jobs and runs.

Every write is one short transaction; nothing holds a connection between calls, so
the runner can call :meth:`Store.upsert_nodes` several times a second while the API
and scheduler read and write from other threads or processes.

:class:`Store` is assembled from mixins, one module each: ``base`` (engine, transactions,
fencing), ``queries`` (reads), ``writes`` (runs, steps, nodes, artifacts), ``queue``
(enqueue, claim, fires), ``fires`` (cron fires in batches), ``ownership`` (heartbeats, reaper, cancel, requeue) and
``processes`` (process registry, leases). Environments and jobs live here.
"""

from __future__ import annotations

from sqlalchemy import select, update

from dockyard import clock
from dockyard.domain import JobRecord
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store import records as rec
from dockyard.store.api_jobs import ApiJobOps
from dockyard.store.fires import FireOps
from dockyard.store.outbox import OutboxOps
from dockyard.store.ownership import HeartbeatResult, OwnershipOps, Reaped
from dockyard.store.processes import ProcessOps
from dockyard.store.queries import RunQueries
from dockyard.store.queue import Claim, EnqueueResult, QueueOps
from dockyard.store.search import RunSearch, RunSearchOps
from dockyard.store.stats import StatsOps
from dockyard.store.tables import environments
from dockyard.store.tables import jobs as jobs_table
from dockyard.store.tokens import TokenOps
from dockyard.store.triggers import TriggerOps
from dockyard.store.writes import BATCH, RUN_FIELDS, TRANSITION_FIELDS, TRIGGERS

__all__ = [
    "BATCH",
    "RUN_FIELDS",
    "TRANSITION_FIELDS",
    "TRIGGERS",
    "Claim",
    "EnqueueResult",
    "HeartbeatResult",
    "Reaped",
    "RunSearch",
    "Store",
]


class Store(
    RunQueries,
    QueueOps,
    FireOps,
    OwnershipOps,
    ProcessOps,
    TriggerOps,
    OutboxOps,
    RunSearchOps,
    StatsOps,
    TokenOps,
    ApiJobOps,
):  # the last four: the API
    """The run store on SQLite or PostgreSQL (``Store(url)``; call :meth:`migrate` first)."""

    def __enter__(self) -> Store:
        return self

    # -- environments and jobs -------------------------------------------------
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
        stmt = self._insert(environments)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={c: stmt.excluded[c] for c in ("target", "schema", "threads", "updated_at")}
        )
        with self._read() as conn:  # unchanged (a restarted server): no write lock to wait for
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
        with self._write() as conn:
            conn.execute(stmt, rows)

    def list_environments(self) -> list[dict]:
        with self._read() as conn:
            result = conn.execute(select(environments).order_by(environments.c.name))
            return [dict(row) for row in result.mappings()]

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
        with self._read() as conn:  # unchanged (a restarted server): no write lock to wait for
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
        with self._write() as conn:
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
                stmt = self._insert(jobs_table)
                keep = ("environment", "cron", "timezone", "definition", "active", "source", "updated_at")
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=["name"], set_={c: stmt.excluded[c] for c in keep}),
                    changed,
                )
            ids = dict(
                conn.execute(select(jobs_table.c.name, jobs_table.c.id).where(jobs_table.c.name.in_(names))).all()
            )
        return {name: ids[name] for name in names}

    def list_jobs(self, active_only: bool = True) -> list[JobRecord]:
        query = select(jobs_table).order_by(jobs_table.c.name)
        if active_only:
            query = query.where(jobs_table.c.active.is_(True))
        with self._read() as conn:
            return [rec.job_record(row) for row in conn.execute(query).mappings()]

    def get_job(self, id_or_name: int | str) -> JobRecord:
        """A job (active or not) by id or name; raises :class:`NotFoundError`."""
        with self._read() as conn:
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
