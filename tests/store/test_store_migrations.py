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
            assert current_revision(conn) == head_revision() == "0012"
        job_ids = store.jobs.sync_jobs([{"name": "a", "environment": "prod"}])
    with Store(empty_url) as again:  # a second process start
        assert again.migrate() is False
        assert again.jobs.get_job("a").id == job_ids["a"]


def test_migrated_schema_matches_metadata(empty_url: str) -> None:
    with Store(empty_url) as store:
        store.migrate()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
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


def test_upgrade_from_0001_keeps_runs_and_downgrade_round_trips(empty_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from dockyard.store.migrations import alembic_config, upgrade

    with Store(empty_url) as store:
        assert upgrade(store.engine, "0001") is True
        with store.engine.begin() as conn:  # a run written by the 0001 code
            conn.execute(
                text(
                    "INSERT INTO jobs (name, environment, definition, created_at, updated_at) "
                    "VALUES ('a', 'prod', '{}', '2025-01-01', '2025-01-01')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO runs (job_id, job_name, environment, status, status_code, "
                    "created_at, updated_at) VALUES (1, 'a', 'prod', 'queued', 1, "
                    "'2025-01-01', '2025-01-01')"
                )
            )
        assert store.migrate() is True
        run = store.runs.get_run(1)
        assert (run.coalesced, run.not_before, run.claimed_at, run.pgid) == (0, None, None, None)
        assert store.queue.claim("w", "h").run_id == 1
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
            assert current_revision(conn) == "0001"
            assert "fires" not in inspect(conn).get_table_names()
            assert "lease_epoch" in {c["name"] for c in inspect(conn).get_columns("runs")}
            assert "claimed_at" not in {c["name"] for c in inspect(conn).get_columns("runs")}
        assert store.migrate() is True
        assert store.runs.get_run(1).status.value == "starting"


def test_0012_backfills_the_pull_request_of_every_run(empty_url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import column, insert, select, table, text

    from dockyard.app.ci import pr_number
    from dockyard.store.migrations import upgrade
    from dockyard.store.tables import pr_number_of, runs

    documents = [
        None,
        {"github_pull_request_id": 42, "cause": "pr 42"},
        {"gitlab_merge_request_id": 7},
        {"non_native_pull_request_id": 1234, "threads_override": 4},
        {"azure_pull_request_id": None, "non_native_pull_request_id": 9},  # null is not set
        {"github_pull_request_id": 5, "gitlab_merge_request_id": 6},  # the first field wins
        {"threads_override": 42, "cause": "github_pull_request_id 42"},  # no pull request
    ]
    with Store(empty_url) as store:
        assert upgrade(store.engine, "0011") is True
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (name, environment, definition, created_at, updated_at) "
                    "VALUES ('a', 'prod', '{}', '2025-01-01', '2025-01-01')"
                )
            )
            # the columns of 0011 (the table as the old code wrote it, overrides as JSON)
            old = table("runs", *(column(c.name, c.type) for c in runs.columns if c.name != "pr_number"))
            row = {"job_id": 1, "job_name": "a", "environment": "prod", "status": "success", "status_code": 10}
            row |= {"created_at": datetime(2025, 1, 1, tzinfo=UTC), "updated_at": datetime(2025, 1, 1, tzinfo=UTC)}
            conn.execute(insert(old), [row | {"overrides": d} for d in documents])
        assert store.migrate() is True
        with store.engine.connect() as conn:
            found = conn.execute(select(runs.c.pr_number).order_by(runs.c.id)).scalars().all()
        assert found == [None, 42, 7, 1234, 9, 5, None]
        assert found == [pr_number_of(d) for d in documents]  # what new runs get (store.writes)
        assert found == [(pr_number(d) or (None,))[0] for d in documents]  # what app.ci reads


def test_the_pull_request_fields_agree_everywhere() -> None:
    import importlib

    from dockyard.app.ci import PR_FIELDS
    from dockyard.store.tables import PR_OVERRIDE_KEYS

    migration = importlib.import_module("dockyard.store.migrations.versions.0012_run_pr")
    assert tuple(PR_FIELDS.values()) == PR_OVERRIDE_KEYS == migration.PR_KEYS


def test_head_revision_matches_alembic() -> None:
    from alembic.script import ScriptDirectory

    from dockyard.store.migrations import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_importing_the_store_does_not_load_alembic() -> None:
    import subprocess
    import sys

    code = "import sys, dockyard.app; print('alembic' in sys.modules, 'mako' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]
