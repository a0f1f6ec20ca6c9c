"""R5: cancelling a run whose model is a long query on dbt-postgres leaves no query of the
run in ``pg_stat_activity``: dbt cancels its queries on SIGINT, which dockyard sends first."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dockyard.app import App

from .conftest import wait_for, worker_slots

SLEEPY = """\
{{ config(materialized='table') }}
select 1 as slept from pg_sleep(600)
"""


def _sleeping(url: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "select pid, state, query, client_port from pg_stat_activity "
            "where datname = current_database() "
            "and pid <> pg_backend_pid() and query ilike '%pg_sleep%' "
            "and state <> 'idle'"
        ).fetchall()


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
    c.configure(
        [{"name": "sleepy", "environment": "pg", "commands": ["dbt run --select sleepy"]}],
        environments={"pg": {"target": "pg", "env": {"MINI_PG_DB": db, "MINI_PG_SCHEMA": "cancel_test"}}},
        runner={"grace_seconds": grace},
    )
    app = App.open(c.config, c.store_url)
    app.sync()
    c.start("worker")
    run_id = app.triggers.enqueue("sleepy", trigger="manual").run_id
    wait_for(lambda: _sleeping(warehouse), 60, "the model's query to run in PostgreSQL")
    started = time.monotonic()
    out = c.cli("cancel", str(run_id))
    assert "requested" in out.stdout
    wait_for(lambda: not _sleeping(warehouse), 10, "no query of the run left in pg_stat_activity", interval=0.25)
    assert time.monotonic() - started <= 10
    run = wait_for(lambda: (r := app.store.runs.get_run(run_id)).status.is_final and r, 20, "the run to end")
    assert (run.status.value, run.reason) == ("cancelled", "cancelled")
    assert [s.status.value for s in run.steps] == ["cancelled"]
    app.close()


def _sleepy_cluster(c, warehouse: str, **server):
    (c.path / "models" / "sleepy.sql").write_text(SLEEPY)
    db = make_url(warehouse).database
    c.configure(
        [{"name": "sleepy", "environment": "pg", "commands": ["dbt run --select sleepy"]}],
        environments={"pg": {"target": "pg", "env": {"MINI_PG_DB": db, "MINI_PG_SCHEMA": "sweep_test"}}},
        server=server or None,
    )
    app = App.open(c.config, c.store_url)
    app.sync()
    return app


def _stored_with_query(app, run_id: int, warehouse: str):
    """The run once the worker has stored the session running the model's query: dbt's
    sockets are scanned every second, so a connection opened just before a kill may not be
    stored yet (docs/server.md); the tests kill after it is."""

    def stored():
        run = app.store.runs.get_run(run_id)
        ports = {port for _, port, _ in (run.warehouse_sessions or {}).get("sessions") or []}
        return run if ports & {row[3] for row in _sleeping(warehouse)} else None

    return wait_for(stored, 15, "the worker to store the session of the model's query")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_a_dbt_killed_outright_leaves_no_query_running(cluster, pg_database_factory):
    """dbt gets no chance to cancel its query (SIGKILL, as from the OOM killer): the worker
    cancels the session it saw dbt open, with the environment's credentials."""
    c = cluster
    warehouse = pg_database_factory()
    app = _sleepy_cluster(c, warehouse)
    c.start("worker")
    run_id = app.triggers.enqueue("sleepy", trigger="manual").run_id
    wait_for(lambda: _sleeping(warehouse), 60, "the model's query to run in PostgreSQL")
    # dbt's sockets are scanned every second; the worker stores what it saw
    stored = _stored_with_query(app, run_id, warehouse)
    assert stored.pgid
    os.killpg(stored.pgid, signal.SIGKILL)
    wait_for(lambda: not _sleeping(warehouse), 15, "the orphaned query to be cancelled", interval=0.25)
    run = wait_for(lambda: (r := app.store.runs.get_run(run_id)).status.is_final and r, 20, "the run to end")
    assert run.status.value == "error"
    log = app.runs.logs(run_id)
    assert "warehouse session(s) dbt left running" in log, log[-2000:]
    # the worker stored the sessions it saw for a reaper (the client port is the connection's)
    assert stored.warehouse_sessions["target"] == "pg" and stored.warehouse_sessions["sessions"]
    app.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_the_reaper_cancels_the_queries_of_a_lost_worker(cluster, pg_database_factory):
    """The worker machine is lost with its dbt (both killed at once): the reaper marks the
    run worker_lost and cancels the query from the sessions the worker stored."""
    c = cluster
    warehouse = pg_database_factory()
    app = _sleepy_cluster(c, warehouse, heartbeat_seconds=0.5, lost_after_seconds=4)
    c.start("scheduler")
    worker = c.start("worker")
    run_id = app.triggers.enqueue("sleepy", trigger="manual").run_id
    wait_for(lambda: _sleeping(warehouse), 60, "the model's query to run in PostgreSQL")
    stored = _stored_with_query(app, run_id, warehouse)
    # the slot is frozen first, so that neither it nor dbt (which gets SIGINT when the slot
    # dies) can cancel anything: only the reaper can
    slot = worker_slots(worker)[0]
    os.kill(slot, signal.SIGSTOP)
    os.killpg(stored.pgid, signal.SIGKILL)
    c.kill(worker)
    killed = time.monotonic()
    wait_for(lambda: not _sleeping(warehouse), 30, "the reaper to cancel the lost run's query", interval=0.25)
    run = wait_for(lambda: (r := app.store.runs.get_run(run_id)).status.is_final and r, 20, "the run to end")
    assert (run.status.value, run.reason) == ("error", "worker_lost")
    assert time.monotonic() - killed < 4 + 0.5 + 10
    app.close()
