"""Process registry (schedulers, workers, servers) and named leader leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update

from dockyard import clock
from dockyard.errors import DockyardError
from dockyard.store import records as rec
from dockyard.store.base import Repository
from dockyard.store.tables import leases, processes

PROCESS_KINDS = ("scheduler", "worker", "server")
RELEASED = datetime(1970, 1, 1, tzinfo=UTC)  # expires_at of a released lease


class ProcessOps(Repository):
    """The process registry and named leases (part of :class:`dockyard.store.ownership.Leases`)."""

    # -- processes -------------------------------------------------------------
    def register_process(
        self,
        id: str,
        kind: str,
        host: str,
        pid: int,
        *,
        concurrency: int | None = None,
        info: dict | None = None,
        now: datetime | None = None,
    ) -> None:
        """Insert (or restart: overwrite) a process row; ``id`` is e.g. ``"host:pid:uuid8"``."""
        if kind not in PROCESS_KINDS:
            raise DockyardError(f"Unknown process kind {kind!r}", hint="use one of " + ", ".join(PROCESS_KINDS))
        now = now or clock.now()
        values = dict(
            id=id,
            kind=kind,
            host=host,
            pid=pid,
            started_at=now,
            heartbeat_at=now,
            stopped_at=None,
            concurrency=concurrency,
            info=rec.jsonable(info),
        )
        stmt = self.db.insert(processes).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def heartbeat_process(self, id: str, *, info: dict | None = None, now: datetime | None = None) -> bool:
        """Renew a process (and replace its ``info`` when given); False if it is not registered."""
        values: dict[str, Any] = {"heartbeat_at": now or clock.now()}
        if info is not None:
            values["info"] = rec.jsonable(info)
        with self.db.write() as conn:
            return conn.execute(update(processes).where(processes.c.id == id).values(**values)).rowcount == 1

    def stop_process(self, id: str, now: datetime | None = None) -> None:
        """Mark a process stopped (a clean shutdown); unknown ids are ignored."""
        with self.db.write() as conn:
            conn.execute(update(processes).where(processes.c.id == id).values(stopped_at=now or clock.now()))

    def list_processes(self, *, alive_within_s: float | None = None, now: datetime | None = None) -> list[dict]:
        """Registered processes (oldest first) as dicts of their columns.

        With ``alive_within_s``: only those not stopped that heartbeat within that many seconds.
        """
        query = select(processes).order_by(processes.c.started_at, processes.c.id)
        if alive_within_s is not None:
            cutoff = (now or clock.now()) - timedelta(seconds=alive_within_s)
            query = query.where(processes.c.stopped_at.is_(None), processes.c.heartbeat_at >= cutoff)
        with self.db.read() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- leases ----------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl_s: float, now: datetime | None = None) -> int | None:
        """Take or renew the lease ``name`` for ``ttl_s`` seconds; returns its epoch, or ``None``.

        Succeeds when the lease is new (epoch 1), already ``holder``'s (renewed, same epoch)
        or expired (taken over: epoch + 1). Epochs never go down, so they can fence a
        former holder. One atomic upsert, safe between processes on both backends.
        """
        now = now or clock.now()
        stmt = self.db.insert(leases).values(
            name=name, holder=holder, epoch=1, expires_at=now + timedelta(seconds=ttl_s)
        )
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": ex.holder,
                "expires_at": ex.expires_at,
                "epoch": case((leases.c.holder == ex.holder, leases.c.epoch), else_=leases.c.epoch + 1),
            },
            where=(leases.c.holder == ex.holder) | (leases.c.expires_at <= now),
        ).returning(leases.c.epoch)
        with self.db.write() as conn:
            return conn.execute(stmt).scalar()

    def release_lease(self, name: str, holder: str) -> bool:
        """Give up the lease if ``holder`` has it (it expires at once; the epoch is kept)."""
        with self.db.write() as conn:
            return (
                conn.execute(
                    update(leases).where(leases.c.name == name, leases.c.holder == holder).values(expires_at=RELEASED)
                ).rowcount
                == 1
            )
