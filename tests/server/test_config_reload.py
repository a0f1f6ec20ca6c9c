"""A running server and a bad dockyard.yml (issue 7, item 2): an alias bomb written while
``dockyard serve`` runs wedges nothing (heartbeats go on, memory stays flat, a run still
runs on the last good config), health and ``dockyard status`` show the error, and it clears
once the file is restored; a scheduler that dies meanwhile is restarted on the last good
config. And the supervisor restarts a worker slot whose heartbeat
stopped (SIGSTOP), within its bound."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from tests.config.test_yaml_bounds import BOMB
from tests.faults.conftest import children, free_port, wait_for, worker_slots

from dockyard.app import App

SERVER = {"heartbeat_seconds": 0.5, "lost_after_seconds": 10, "poll_seconds": 0.1}
JOBS = [{"name": "quick", "environment": "dev", "commands": ["dbt deps"]}]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (serve: the scheduler, the worker, its slots)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children(current))
    return out


def _beats(c) -> dict[str, object]:
    return {p["id"]: p["heartbeat_at"] for p in c.store.leases.list_processes() if p["stopped_at"] is None}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_bomb_written_while_serving_wedges_nothing_and_is_reported(cluster):
    c = cluster
    c.configure(JOBS, server=SERVER)
    good = c.path / "good.yml"
    shutil.copy(c.config, good)
    app = App.open(c.config, c.store_url)
    app.sync()
    port = free_port()
    serve = c.start("serve", "--port", str(port), "--workers", "1")
    health = f"http://127.0.0.1:{port}/api/v1/health"
    wait_for(lambda: httpx.get(health, timeout=2).json()["workers"] == 1, 90, "the scheduler and the worker slot")

    c.configure(JOBS, text=good.read_text() + BOMB.replace("environments:\n  dev:\n    target: dev\n", ""))
    rss = {pid: _rss_kb(pid) for pid in _family(serve.pid)}

    def reported():
        answer = httpx.get(health, timeout=2).json()
        return answer if not answer["config"]["ok"] and len(answer["config"]["processes"]) >= 2 else None

    # each process checks the file in a probe (a Python start: ~1 s, several under load)
    answer = wait_for(reported, 30, "health to report the bad file from the scheduler and the worker slot")
    assert "alias bomb" in answer["config"]["error"] and "dockyard.yml:" in answer["config"]["error"], answer
    assert answer["status"] == "degraded"

    # every process goes on: heartbeats renewed, memory flat, a run runs on the last good config
    before = _beats(c)
    time.sleep(2)
    after = _beats(c)
    assert all(after[k] > v for k, v in before.items() if k in after), (before, after)
    second = app.triggers.enqueue("quick", trigger="manual").run_id
    wait_for(lambda: app.store.runs.get_run(second).status.is_final, 60, "a run with the last good config")
    assert app.store.runs.get_run(second).status.value == "success"
    for pid, kb in rss.items():
        if os.path.exists(f"/proc/{pid}"):
            assert _rss_kb(pid) - kb < 50_000, f"process {pid} grew from {kb} kB to {_rss_kb(pid)} kB"

    # a scheduler that dies now is restarted on the last good config, and reports the error
    old = next(p for p in c.store.leases.list_processes() if p["kind"] == "scheduler" and p["stopped_at"] is None)
    os.kill(old["pid"], signal.SIGKILL)

    def restarted():
        return [
            p
            for p in c.store.leases.list_processes()
            if p["kind"] == "scheduler" and p["pid"] != old["pid"] and (p.get("info") or {}).get("config_error")
        ]

    assert "alias bomb" in wait_for(restarted, 30, "a new scheduler")[0]["info"]["config_error"]

    # dockyard status shows the processes and the error, even with the bad file in place
    status = c.cli("status", "--json", check=1)
    report = json.loads(status.stdout)
    assert not report["config"]["ok"] and "alias bomb" in report["config"]["error"]
    assert len(report["config"]["processes"]) >= 2 and "Error:" in status.stderr
    assert "Traceback" not in status.stderr

    c.configure(JOBS, text=good.read_text())
    wait_for(lambda: httpx.get(health, timeout=2).json()["config"]["ok"], 20, "the error to clear")
    wait_for(
        lambda: not json.loads(c.cli("status", "--json").stdout)["config"]["processes"], 20, "every process to clear it"
    )
    assert "Traceback" not in serve.text()
    assert c.stop(serve) == 0
    app.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_slot_whose_heartbeat_stops_is_restarted(cluster):
    c = cluster
    c.configure(JOBS, server={**SERVER, "stale_after_seconds": 2})
    worker = c.start("worker", "--concurrency", "1")

    def slot_row():
        slots = worker_slots(worker)
        rows = [p for p in c.store.leases.list_processes() if p["pid"] in slots and p["stopped_at"] is None]
        return rows[0] if rows else None

    row = wait_for(slot_row, 90, "the worker slot to register")
    os.kill(row["pid"], signal.SIGSTOP)
    stopped = time.monotonic()
    # stale bound 2 s + the watchdog's 1 s period + slack; the slot gets SIGTERM and SIGCONT
    wait_for(lambda: row["pid"] not in worker_slots(worker), 2 + 1 + 5 + 3, "the wedged slot to be stopped")
    took = time.monotonic() - stopped
    wait_for(lambda: worker_slots(worker), 5, "a new slot")  # forked at once (it then imports dbt)
    text = worker.text()
    assert "has not renewed its heartbeat" in text and "restarting it" in text, text[-3000:]
    assert took < 11, took
    assert c.stop(worker) == 0
