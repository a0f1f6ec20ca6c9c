"""R4 (b): the PostgreSQL server behind the store is stopped and started again (a clean
``fast`` shutdown that drops every connection, and an ``immediate`` crash that makes it
recover from its WAL) while a scheduler and two workers run jobs. No process restarts,
every run ends in exactly one success, and the processes' heartbeats resume."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from dockyard.app import App
from dockyard.store.tables import processes

from .conftest import assert_no_duplicate_runs, free_port, wait_for, worker_slots
from .private_pg import PrivatePostgres

RUNS = 8
DOWN_S = 5


@pytest.fixture
def private_pg():
    server = PrivatePostgres(free_port()).init()
    yield server
    server.destroy()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_store_server_restart_loses_nothing_and_restarts_nothing(cluster_factory, private_pg, mode):
    c = cluster_factory(private_pg.url)
    c.configure([{"name": f"job{i}", "environment": "dev", "commands": ["dbt deps", "dbt parse", "dbt deps"],
                  "allow_overlap": True} for i in range(2)],
                server={"heartbeat_seconds": 1, "lost_after_seconds": 15})
    app = App.open(c.config, c.store_url)
    app.sync()
    procs = [c.start("scheduler"), c.start("worker", "--concurrency", "2", name="worker-a"),
             c.start("worker", "--concurrency", "2", name="worker-b")]
    slots = wait_for(lambda: (s := [x for p in procs[1:] for x in worker_slots(p)]) and len(s) == 4 and s,
                     30, "worker slots")
    pids_before = sorted([p.pid for p in procs] + slots)
    roots = [app.enqueue(f"job{i % 2}", trigger="manual").run_id for i in range(RUNS)]
    app.close()
    wait_for(lambda: c.store.list_runs(status="running", limit=None), 60, "runs to be running", interval=0.1)

    private_pg.stop(mode)
    stopped_at = time.time()
    time.sleep(DOWN_S)
    private_pg.start()

    wait_for(c.all_final, 120, "every run to end", interval=0.5)
    runs = c.all_runs()
    assert sorted(r.id for r in runs) == roots, "a run was lost, duplicated or retried"
    assert_no_duplicate_runs(c)
    assert [(r.id, r.status.value, r.reason) for r in runs if r.status.value != "success"] == []
    # the same schedulers, workers and slots, none restarted
    assert all(p.running for p in procs), c.diagnostics()
    pids_after = sorted([p.pid for p in procs] + [x for p in procs[1:] for x in worker_slots(p)])
    assert pids_after == pids_before, c.diagnostics()
    assert "restarting it" not in "".join(p.text() for p in procs)
    # every process heartbeats again after the restart
    def beating():
        with c.store.engine.connect() as conn:
            rows = conn.execute(select(processes.c.kind, processes.c.heartbeat_at)
                                .where(processes.c.stopped_at.is_(None))).all()
        return len(rows) == 5 and all(r.heartbeat_at.timestamp() > stopped_at + DOWN_S for r in rows) and rows

    wait_for(beating, 30, "heartbeats of the scheduler and the four slots after the restart")
