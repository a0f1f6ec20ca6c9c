"""SQLAlchemy engines for the run store: SQLite (default) and PostgreSQL.

SQLite connections are tuned for one writer and many readers in several processes
(WAL, a 30 s busy timeout, foreign keys on). dockyard emits ``BEGIN`` itself instead of
letting the ``sqlite3`` module do it, so reads see one consistent snapshot and write
transactions can start with ``BEGIN IMMEDIATE`` (see :func:`write_options`), which makes
SQLite wait for the write lock up front instead of failing half-way through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from dockyard.errors import StoreError
from dockyard.permissions import private_dir, private_file

#: Execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``.
WRITE_OPTION = "dockyard_write"

#: How long a SQLite statement waits for another connection's lock (the driver's ``timeout``).
BUSY_TIMEOUT_S = 30
SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}",  # first, so switching to WAL waits for other connections
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
PG_CONNECT_TIMEOUT_S = 10

URL_HINT = "use sqlite:///path/to/dockyard.db or postgresql://user:password@host:5432/database"


def default_url(project_dir: Path) -> str:
    """The store used when none is configured: a SQLite file inside the project."""
    return f"sqlite:///{Path(project_dir).resolve() / '.dockyard' / 'dockyard.db'}"


def parse_url(url: str | URL) -> URL:
    """Parse and normalise a store URL (``postgresql://`` → ``postgresql+psycopg://``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"Invalid store URL {mask_url(str(url))!r}", hint=URL_HINT) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"Unsupported store URL {mask_url(parsed)!r} (backend {backend!r})", hint=URL_HINT)
    return parsed


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Unparseable: blank out anything between "://user:" and "@".
        head, sep, rest = url.partition("://")
        if sep and "@" in rest and ":" in rest.split("@", 1)[0]:
            user = rest.split("@", 1)[0].split(":", 1)[0]
            return f"{head}://{user}:***@{rest.split('@', 1)[1]}"
        return url


def make_engine(url: str | URL) -> Engine:
    """Create the engine for ``url``; nothing connects until first use."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def write_options(conn: Connection) -> Connection:
    """Mark ``conn`` (before it begins) as a writer: SQLite then uses BEGIN IMMEDIATE."""
    return conn.execution_options(**{WRITE_OPTION: True})


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        # The folder (0700) and the database file (0600) exist before SQLite opens it: SQLite
        # gives its -wal and -shm files the database file's mode (see dockyard.permissions).
        path = Path(database).expanduser()
        try:
            private_dir(path.parent)
            private_file(path)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the store {database!r}: {exc}", hint="check the path and its permissions"
            ) from exc
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


@contextmanager
def lock_wait(conn: Connection, wait_s: float | None) -> Iterator[None]:
    """Around a transaction of ``conn`` (before it begins): wait at most ``wait_s`` for other
    connections' locks instead of the usual 30 s (SQLite) or indefinitely (PostgreSQL). For
    writes that may be skipped (bookkeeping) and probes (health)."""
    if wait_s is None:
        yield
        return
    if conn.dialect.name != "sqlite":  # PostgreSQL: SET LOCAL lock_timeout, see Database.write
        yield
        return
    ms = max(0, int(wait_s * 1000))
    raw = conn.connection.driver_connection  # no BEGIN: the sqlite3 connection itself
    raw.execute(f"PRAGMA busy_timeout={ms}")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # back to the default for the pool's next user
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the "begin" listener below emits BEGIN
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            _pragma(cursor, pragma)
    finally:
        cursor.close()


def _pragma(cursor, pragma: str) -> None:
    """Run one connection pragma. Switching a new database to WAL needs a lock that SQLite
    refuses at once (no busy handler) while another connection is switching it too: several
    processes opening a fresh store together. That refusal is retried within the busy timeout."""
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute(pragma)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(WRITE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
