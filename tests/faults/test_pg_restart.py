"""R4 (b): the PostgreSQL server behind the store is stopped and started again (a clean
``fast`` shutdown that drops every connection, and an ``immediate`` crash that makes it
recover from its WAL) while ``dockyard serve`` (API and scheduler) and two workers run jobs.
No process restarts, every run ends in exactly one success, the processes' heartbeats
resume, and the API answers 503 with Retry-After during the outage, never a 500."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import select

from dockyard.app import App
from dockyard.store.tables import processes

from .conftest import QUICK, assert_no_duplicate_runs, free_port, wait_for, worker_slots
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
    c.configure(
        [
            {"name": f"job{i}", "environment": "dev", "commands": [QUICK, "dbt parse", QUICK], "allow_overlap": True}
            for i in range(2)
        ],
        server={"heartbeat_seconds": 1, "lost_after_seconds": 15},
    )
    app = App.open(c.config, c.store_url)
    app.sync()
    port = free_port()
    procs = [
        c.start("serve", "--port", str(port), "--workers", "0"),
        c.start("worker", "--concurrency", "2", name="worker-a"),
        c.start("worker", "--concurrency", "2", name="worker-b"),
    ]
    api = f"http://127.0.0.1:{port}/api/v1"
    wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 60, "the API to answer")
    # serve's child is the scheduler; each worker has two slots
    slots = wait_for(
        lambda: (s := [x for p in procs for x in worker_slots(p)]) and len(s) == 5 and s,
        30,
        "the scheduler and the worker slots",
    )
    pids_before = sorted([p.pid for p in procs] + slots)
    roots = [app.triggers.enqueue(f"job{i % 2}", trigger="manual").run_id for i in range(RUNS)]
    app.close()
    wait_for(lambda: c.store.runs.list_runs(status="running", limit=None), 60, "runs to be running", interval=0.1)

    answers: list[tuple[int, str | None, str]] = []  # status, Retry-After, body
    health: list[tuple[int, str]] = []
    probing = threading.Event()
    probing.set()

    def probe():
        with httpx.Client(timeout=5) as client:
            while probing.is_set():
                try:
                    r = client.get(f"{api}/runs", params={"limit": 5})
                    answers.append((r.status_code, r.headers.get("retry-after"), r.text[:300]))
                    r = client.get(f"{api}/health")
                    health.append((r.status_code, r.json()["status"]))
                except httpx.HTTPError as exc:
                    answers.append((0, None, repr(exc)))
                time.sleep(0.25)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    private_pg.stop(mode)
    stopped_at = time.time()
    time.sleep(DOWN_S)
    private_pg.start()

    wait_for(c.all_final, 120, "every run to end", interval=0.5)
    wait_for(lambda: answers and answers[-1][0] == 200, 30, "the API to answer again")
    probing.clear()
    prober.join(10)
    codes = {code for code, _, _ in answers}
    assert codes <= {200, 503}, [a for a in answers if a[0] not in (200, 503)][:3]
    unavailable = [a for a in answers if a[0] == 503]
    assert unavailable, "the API never said the store was unavailable"
    assert all(retry_after for _, retry_after, _ in unavailable)
    assert (503, "unavailable") in health and health[-1][0] == 200, health
    # the API's one error shape, without the store's address
    assert all('"code":503' in body and "postgresql" not in body for _, _, body in unavailable), unavailable[0]
    runs = c.all_runs()
    assert sorted(r.id for r in runs) == roots, "a run was lost, duplicated or retried"
    assert_no_duplicate_runs(c)
    assert [(r.id, r.status.value, r.reason) for r in runs if r.status.value != "success"] == []
    # the same schedulers, workers and slots, none restarted
    assert all(p.running for p in procs), c.diagnostics()
    pids_after = sorted([p.pid for p in procs] + [x for p in procs for x in worker_slots(p)])
    assert pids_after == pids_before, c.diagnostics()
    assert "restarting it" not in "".join(p.text() for p in procs)

    # every process heartbeats again after the restart
    def beating():
        with c.store.engine.connect() as conn:
            rows = conn.execute(
                select(processes.c.kind, processes.c.heartbeat_at).where(
                    processes.c.stopped_at.is_(None), processes.c.kind.in_(("scheduler", "worker"))
                )
            ).all()
        return len(rows) == 5 and all(r.heartbeat_at.timestamp() > stopped_at + DOWN_S for r in rows) and rows

    wait_for(beating, 30, "heartbeats of the scheduler and the four slots after the restart")
