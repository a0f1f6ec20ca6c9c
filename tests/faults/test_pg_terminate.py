"""R4 (a): ``pg_terminate_backend`` on every connection to the store's database, again and
again while runs execute: nothing is lost or duplicated, and no process restarts."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dockyard.app import App

from .conftest import PG_ADMIN_URL, QUICK, assert_no_duplicate_runs, wait_for, worker_slots

RUNS = 12


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_terminated_connections_lose_nothing(pg_cluster):
    c = pg_cluster
    c.configure(
        [
            {
                "name": f"job{i}",
                "environment": "dev",
                "commands": [QUICK, "dbt parse"],
                "allow_overlap": True,
                "retries": {"max_attempts": 3, "backoff_seconds": 0},
            }
            for i in range(2)
        ],
        server={"heartbeat_seconds": 1, "lost_after_seconds": 8},
    )
    app = App.open(c.config, c.store_url)
    app.sync()
    database = make_url(c.store_url).database
    procs = [
        c.start("scheduler"),
        c.start("worker", "--concurrency", "2", name="worker-a"),
        c.start("worker", "--concurrency", "2", name="worker-b"),
    ]
    slots = wait_for(
        lambda: (s := [x for p in procs[1:] for x in worker_slots(p)]) and len(s) == 4 and s, 30, "worker slots"
    )
    pids_before = sorted([p.pid for p in procs] + slots)
    roots = [app.triggers.enqueue(f"job{i % 2}", trigger="manual").run_id for i in range(RUNS)]
    app.close()
    wait_for(lambda: c.active_count() < RUNS, 30, "runs to start")

    terminated = 0
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        end = time.monotonic() + 12
        while time.monotonic() < end:
            terminated += admin.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (database,),
            ).fetchone()[0]
            time.sleep(0.3)
    assert terminated >= 20, f"only {terminated} connections were terminated"

    wait_for(c.all_final, 90, "every run to end", interval=0.5)
    runs = c.all_runs()
    assert sorted(r.id for r in runs if r.retry_of is None) == roots
    assert_no_duplicate_runs(c)
    # every trigger ended in one success (a retry only if a run had to be given up)
    by_root = Counter()
    for r in runs:
        root = r.id
        while (parent := next((x for x in runs if x.id == root), None)) and parent.retry_of:
            root = parent.retry_of
        by_root[root] += r.status.value == "success"
    assert all(by_root[r] == 1 for r in roots), [(r.id, r.retry_of, r.status, r.reason) for r in runs]
    lost = [r for r in runs if r.status.value != "success"]
    # no process restarted: the same schedulers, workers and slots
    assert all(p.running for p in procs), c.diagnostics()
    pids_after = sorted([p.pid for p in procs] + [x for p in procs[1:] for x in worker_slots(p)])
    assert pids_after == pids_before, c.diagnostics()
    assert "restarting it" not in "".join(p.text() for p in procs)
    assert not lost, [(r.id, r.status, r.reason) for r in lost]
