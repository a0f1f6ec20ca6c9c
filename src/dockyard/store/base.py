"""What every repository of the store shares: the engine, transactions, error translation, fencing.

:class:`Database` is the shared core: one per :class:`dockyard.store.Store`, handed to each
repository (:class:`Repository`), which holds it as ``self.db`` instead of inheriting it.
:func:`fence` and :func:`run_not_found` work inside a caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dockyard import clock
from dockyard.domain import RunStatus
from dockyard.errors import DockyardError, FencedError, NotFoundError, UnknownRunError
from dockyard.store import records as rec
from dockyard.store.engine import lock_wait, make_engine, mask_url, parse_url, write_options
from dockyard.store.migrations import upgrade
from dockyard.store.tables import runs

log = logging.getLogger("dockyard.store")
#: How long the health check's write probe waits for another writer (see write_state).
WRITE_PROBE_WAIT_S = 1.0
alembic_version = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))


class _Rollback(Exception):
    """Ends the write probe's transaction without committing."""


#: A run a worker owns (and may write to) is in one of these statuses.
ACTIVE = (RunStatus.STARTING.value, RunStatus.RUNNING.value)


class Database:
    """The engine and its transactions on SQLite or PostgreSQL, shared by the repositories."""

    def __init__(self, url: str):
        self._url = parse_url(url)
        self.engine = make_engine(self._url)

    @property
    def url(self) -> str:
        """The store URL with any password masked (safe to print or log)."""
        return mask_url(self._url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def migrate(self) -> bool:
        """Create or upgrade the schema; a no-op (returns False) when up to date."""
        with self.guard():
            return upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ----------------------------------------------------------
    @contextmanager
    def guard(self) -> Iterator[None]:
        with rec.translate_errors(self._url):
            yield

    @contextmanager
    def write(self, isolation: str | None = None, wait_s: float | None = None) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``isolation`` if given).
        ``wait_s``: give up (StoreError) after waiting that long for another writer's lock."""
        with self.guard(), self.engine.connect() as conn:
            write_options(conn)
            if isolation and self.dialect == "postgresql":
                conn.execution_options(isolation_level=isolation)
            with lock_wait(conn, wait_s), conn.begin():
                if wait_s is not None and self.dialect == "postgresql":
                    ms = max(1, int(wait_s * 1000))
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms + 1000}")
                yield conn

    def write_state(self, wait_s: float = WRITE_PROBE_WAIT_S) -> str:
        """Whether a write can happen now (for health): ``ok``; ``locked`` when another
        connection held the write lock for ``wait_s``; ``error`` otherwise (logged). A write
        transaction that touches the schema version row and rolls back."""
        try:
            with self.write(wait_s=wait_s) as conn:
                conn.execute(update(alembic_version).values(version_num=alembic_version.c.version_num))
                raise _Rollback
        except _Rollback:
            return "ok"
        except DockyardError as exc:
            lowered = exc.what.lower()
            if any(word in lowered for word in ("locked", "busy", "lock timeout", "statement timeout")):
                log.warning("store write probe: the write lock stayed taken for %.1f s", wait_s)
                return "locked"
            log.warning("store write probe failed: %s", exc.what)
            return "error"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.guard(), self.engine.connect() as conn:
            if self.dialect == "postgresql":  # several SELECTs, one snapshot
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT (with ``on_conflict_do_*``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)


class Repository:
    """One noun of the store over the shared :class:`Database` (``self.db``)."""

    def __init__(self, db: Database):
        self.db = db


def run_not_found(conn: Connection, run_id: int) -> NotFoundError:
    newest = conn.execute(select(func.max(runs.c.id))).scalar()
    hint = f"the newest run is {newest}" if newest else "no runs have been recorded yet"
    return UnknownRunError(f"Run {run_id} not found", hint=hint)


def fence(conn: Connection, run_id: int, epoch: int | None, now: datetime | None = None) -> None:
    """Check, inside ``conn``'s transaction, that the caller still owns the run.

    A conditional ``UPDATE runs SET updated_at`` (not a SELECT) so that on PostgreSQL the
    row stays locked until commit: a reaper or rival claim waits for this write instead
    of interleaving with it. Raises :class:`FencedError` (the transaction then rolls back,
    so nothing is written) unless the run is starting/running with lease epoch ``epoch``.
    ``epoch=None`` checks nothing (callers that do not hold a lease).
    """
    if epoch is None:
        return
    stmt = (
        update(runs)
        .where(runs.c.id == run_id, runs.c.lease_epoch == epoch, runs.c.status.in_(ACTIVE))
        .values(updated_at=now or clock.now())
    )
    if conn.execute(stmt).rowcount == 1:
        return
    row = conn.execute(select(runs.c.status, runs.c.lease_epoch).where(runs.c.id == run_id)).first()
    if row is None:
        raise FencedError(f"Run {run_id} no longer exists", hint="stop working on it; nothing was written")
    raise FencedError(
        f"Run {run_id} is no longer owned by lease epoch {epoch} (it is {row.status}, epoch {row.lease_epoch})",
        hint="another worker or the reaper took it over; stop working on it (nothing was written)",
    )
