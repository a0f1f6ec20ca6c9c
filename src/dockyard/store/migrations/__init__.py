"""Programmatic Alembic migrations for the run store (no alembic.ini needed).

:func:`upgrade` is safe to call from several processes at once: on PostgreSQL it holds
a transaction-level advisory lock, on SQLite a ``BEGIN IMMEDIATE`` write lock, and the
whole upgrade runs in that one transaction (both backends have transactional DDL).
Calling it on an up-to-date database only reads the version table.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from dockyard.store.engine import write_options

SCRIPT_LOCATION = Path(__file__).resolve().parent
PG_LOCK_KEY = 0x646F636B79617264  # "dockyard" as a bigint


def alembic_config(connection: Connection | None = None):
    """An Alembic config pointing at this folder; ``connection`` is handed to env.py.

    Alembic (and Mako) are imported only here and when a migration actually runs: a store
    that is up to date never loads them, which keeps every dockyard process small."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest revision, read from the version files (``revision = "000N"``) without
    importing Alembic; a test checks it against Alembic's own idea of the head."""
    found = []
    for path in (SCRIPT_LOCATION / "versions").glob("*.py"):
        match = re.search(r'^revision\s*=\s*["\']([^"\']+)["\']', path.read_text(), re.M)
        if match:
            found.append(match.group(1))
    assert found, "no migration versions found"
    return max(found)


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, ``None`` when it was never migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Bring the database to ``revision``; returns whether anything was applied."""
    target = head_revision() if revision == "head" else revision
    with engine.connect() as conn:
        if current_revision(conn) == target:
            return False
    with engine.connect() as conn:
        write_options(conn)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            before = current_revision(conn)
            if before == target:  # another process got there first
                return False
            from alembic import command

            command.upgrade(alembic_config(conn), revision)
            return True
