"""R5: cancelling a run whose model is a long query on dbt-postgres leaves no query of the
run in ``pg_stat_activity``: dbt cancels its queries on SIGINT, which dockyard sends first."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dockyard.app import App

from .conftest import wait_for

SLEEPY = """\
{{ config(materialized='table') }}
select 1 as slept from pg_sleep(600)
"""


def _sleeping(url: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select pid, state, query from pg_stat_activity where datname = current_database() "
                            "and pid <> pg_backend_pid() and query ilike '%pg_sleep%' "
                            "and state <> 'idle'").fetchall()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(150)
@pytest.mark.parametrize("grace", [10, 0], ids=["grace-10s", "no-grace"])
def test_cancel_leaves_no_query_running(cluster, pg_database_factory, grace):
    """``grace`` 10: dbt gets SIGINT and time to cancel its query itself; 0: SIGTERM follows
    SIGINT at once (dbt cancels its query on SIGINT before it dies)."""
    c = cluster
    warehouse = pg_database_factory()
    (c.path / "models" / "sleepy.sql").write_text(SLEEPY)
    db = make_url(warehouse).database
    c.configure([{"name": "sleepy", "environment": "pg", "commands": ["dbt run --select sleepy"]}],
                environments={"pg": {"target": "pg", "env": {"MINI_PG_DB": db, "MINI_PG_SCHEMA": "cancel_test"}}},
                runner={"grace_seconds": grace})
    app = App.open(c.config, c.store_url)
    app.sync()
    c.start("worker")
    run_id = app.enqueue("sleepy", trigger="manual").run_id
    wait_for(lambda: _sleeping(warehouse), 60, "the model's query to run in PostgreSQL")
    started = time.monotonic()
    out = c.cli("cancel", str(run_id))
    assert "requested" in out.stdout
    wait_for(lambda: not _sleeping(warehouse), 10, "no query of the run left in pg_stat_activity", interval=0.25)
    assert time.monotonic() - started <= 10
    run = wait_for(lambda: (r := app.store.get_run(run_id)).status.is_final and r, 20, "the run to end")
    assert (run.status.value, run.reason) == ("cancelled", "cancelled")
    assert [s.status.value for s in run.steps] == ["cancelled"]
    app.close()
