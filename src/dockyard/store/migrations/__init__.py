"""Programmatic Alembic migrations for the run store (no alembic.ini needed).

:func:`upgrade` is safe to call from several processes at once: on PostgreSQL it holds
a transaction-level advisory lock, on SQLite a ``BEGIN IMMEDIATE`` write lock, and the
whole upgrade runs in that one transaction (both backends have transactional DDL).
Calling it on an up-to-date database only reads the version table.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from dockyard.store.engine import write_options

SCRIPT_LOCATION = Path(__file__).resolve().parent
PG_LOCK_KEY = 0x646F636B79617264  # "dockyard" as a bigint


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at this folder; ``connection`` is handed to env.py."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, ``None`` when it was never migrated."""
    return MigrationContext.configure(conn).get_current_revision()


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
            command.upgrade(alembic_config(conn), revision)
            return True
