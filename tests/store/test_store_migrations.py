"""Alembic migrations: idempotent, concurrent-safe, and matching ``tables.metadata``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from dockyard.store import Store
from dockyard.store.migrations import current_revision, head_revision
from dockyard.store.tables import metadata


def test_migrate_is_idempotent(empty_url: str) -> None:
    with Store(empty_url) as store:
        assert store.migrate() is True
        assert store.migrate() is False
        with store.engine.connect() as conn:
            assert current_revision(conn) == head_revision() == "0001"
        job_ids = store.sync_jobs([{"name": "a", "environment": "prod"}])
    with Store(empty_url) as again:  # a second process start
        assert again.migrate() is False
        assert again.get_job("a").id == job_ids["a"]


def test_migrated_schema_matches_metadata(empty_url: str) -> None:
    with Store(empty_url) as store:
        store.migrate()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True})
            assert compare_metadata(context, metadata) == []
            tables = set(inspect(conn).get_table_names())
    assert tables == {t.name for t in metadata.sorted_tables} | {"alembic_version"}


def test_concurrent_migrations_do_not_collide(empty_url: str) -> None:
    stores = [Store(empty_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            applied = list(pool.map(lambda s: s.migrate(), stores))
        assert applied.count(True) == 1
        with stores[0].engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        for s in stores:
            s.close()
