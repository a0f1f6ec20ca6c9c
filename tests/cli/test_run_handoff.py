"""``dockyard run`` hands its run to a running server's worker slot (``app.handoff``): a real
``dockyard worker`` on a copy of tests/fixtures/mini, real dbt on DuckDB, the real CLI in a
process of its own. The run is queued, executed by the worker (its record says so, its step
log has the warm note) and followed by the CLI with the output of a foreground run; Ctrl-C
cancels it in the server; ``--local`` and ``runner.hand_off: false`` run it in the CLI;
without a live worker nothing changes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from tests.faults.conftest import DOCKYARD, Cluster, wait_for

from dockyard import clock
from dockyard.app import App
from dockyard.app.handoff import CAUSE

JOBS = [
    {"name": "quick", "environment": "dev", "commands": ["dbt run --select stg_numbers numbers_summary"]},
    {"name": "failing", "environment": "dev", "commands": ["dbt run --select bad_model --vars '{fail: true}'"]},
    {
        "name": "slow",
        "environment": "dev",
        "commands": ["dbt run --select slow_model --vars '{slow: true}'", "dbt parse"],
    },
]
TITLE = re.compile(r"^Run (\d+): (\S+) on dev \(handed to the running server: worker slots warm\)$")


def _live_worker(c: Cluster) -> bool:
    alive = c.store.leases.list_processes(alive_within_s=5)
    return any(p["kind"] == "worker" and p["host"] == socket.gethostname() for p in alive)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One project with a ``dockyard worker`` (one slot) for the module's tests."""
    c = Cluster(tmp_path_factory.mktemp("handoff"))
    c.configure(JOBS)
    worker = c.start("worker", "--concurrency", "1", name="worker")
    try:
        wait_for(lambda: _live_worker(c), 120, "the worker slot to register")
        yield c
    finally:
        try:
            c.stop(worker)
        finally:
            c.cleanup()


def _run(c: Cluster, *args: str, expect: int, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = c.cli("run", *args, check=None, timeout=timeout)
    assert proc.returncode == expect, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{c.diagnostics()}"
    )
    assert "Traceback" not in proc.stderr
    return proc


def _step_log(c: Cluster, run_id: int, step: int = 1) -> str:
    return (c.path / ".dockyard" / "runs" / str(run_id) / "logs" / f"step-{step}.log").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_is_handed_to_the_running_worker_and_streamed_like_a_foreground_run(served):
    c = served
    seen = []
    for _ in range(2):  # the second run finds the manifest in the slot's memory: no parse
        started = time.monotonic()
        proc = _run(c, "quick", expect=0)
        seen.append(time.monotonic() - started)
        lines = proc.stdout.splitlines()
        title = TITLE.match(lines[0])
        assert title and title.group(2) == "quick", proc.stdout[:500]
        run_id = int(title.group(1))
        out = proc.stdout
        assert "── step 1: dbt run --select stg_numbers numbers_summary" in out
        assert "── step 1 success" in out
        assert re.search(r"1 of 2 START sql table model main\.stg_numbers", out), out[-2000:]
        assert "Completed successfully" in out  # dbt's own log lines, as the worker wrote them
        assert f"Run {run_id}  quick on dev  success" in out  # the summary of a foreground run
        run = c.store.runs.get_run(run_id)
        assert run.status.value == "success" and run.trigger == "manual" and run.cause == CAUSE
        assert ":worker:" in (run.worker_id or ""), run.worker_id  # claimed by the slot, not host:pid
        assert "[dockyard] warm:" in _step_log(c, run_id)
        assert "[dockyard] warm:" in out  # the note is a log line like dbt's
    assert "warm: no parse" in _step_log(c, run_id), _step_log(c, run_id)[:2000]
    print(f"handed-off dockyard run: {seen[0]:.1f} s (first), {seen[1]:.1f} s (warm)")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_json_and_quiet_behave_as_in_the_foreground(served):
    c = served
    proc = _run(c, "quick", "--json", expect=0)
    data = json.loads(proc.stdout)  # standard output holds the run object only
    assert TITLE.match(proc.stderr.splitlines()[0]), proc.stderr[:500]
    assert data["status"] == "success" and data["trigger"] == "manual" and data["cause"] == CAUSE
    assert [s["status"] for s in data["steps"]] == ["success"]
    assert {n["name"] for n in data["nodes"]} == {"stg_numbers", "numbers_summary"}
    assert "Completed successfully" not in proc.stderr  # no dbt log lines with --json
    quiet = _run(c, "quick", "--quiet", expect=0)
    assert TITLE.match(quiet.stdout.splitlines()[0])
    assert "── step 1 success" in quiet.stdout and "START sql" not in quiet.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_failing_handed_off_run_exits_1(served):
    c = served
    proc = _run(c, "failing", expect=1)
    run_id = int(TITLE.match(proc.stdout.splitlines()[0]).group(1))
    assert "── step 1 error" in proc.stdout
    assert "a_table_that_does_not_exist" in proc.stdout  # dbt's error, from the worker's log
    run = c.store.runs.get_run(run_id)
    assert (run.status.value, run.reason) == ("error", "step_failed")
    assert ":worker:" in run.worker_id


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_local_and_hand_off_false_run_in_the_cli(served):
    c = served
    proc = _run(c, "quick", "--local", "--json", expect=0)  # (the refactored foreground path)
    assert "handed to" not in proc.stderr
    assert re.match(r"^Run (\d+): quick on dev$", proc.stderr.splitlines()[0]), proc.stderr[:300]
    run_id = json.loads(proc.stdout)["id"]
    owner = c.store.runs.get_run(run_id).worker_id
    assert owner.split(":")[0] == socket.gethostname() and len(owner.split(":")) == 2, owner  # host:pid
    # runner.hand_off: false in another dockyard.yml over the same project and store
    doc = yaml.safe_load(c.config.read_text())
    doc["runner"]["hand_off"] = False
    other = c.path / "no-hand-off.yml"
    other.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run(
        [*DOCKYARD, "run", "quick", "--config", str(other)],
        cwd=c.path,
        env=c.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "handed to" not in proc.stdout and "Completed successfully" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_cancels_the_handed_off_run_in_the_server(served):
    c = served
    proc = subprocess.Popen(
        [*DOCKYARD, "run", "slow", "--config", str(c.config)],
        cwd=c.path,
        env=c.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the SIGINT goes to the CLI alone, as the terminal's would not
    )
    try:
        title = proc.stdout.readline()
        match = TITLE.match(title.rstrip("\n"))
        assert match and match.group(2) == "slow", title
        run_id = int(match.group(1))

        def slow_model_running():
            run = c.store.runs.get_run(run_id)
            return run.status.value == "running" and "START sql table model main.slow_model" in _step_log(c, run_id)

        wait_for(slow_model_running, 120, "the slow model to start in the worker")
        time.sleep(1)
        os.kill(proc.pid, signal.SIGINT)
        asked = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 130, f"{out[-2000:]}\n{err[-2000:]}\n{c.diagnostics()}"
    assert time.monotonic() - asked < 40, "the run went on after Ctrl-C"
    assert "Cancelling: asking the server to stop dbt" in out
    run = c.store.runs.get_run(run_id)
    assert (run.status.value, run.reason) == ("cancelled", "cancelled")
    assert [s.status.value for s in run.steps] == ["cancelled", "skipped"]
    assert ":worker:" in run.worker_id
    assert "── step 2 skipped" in out and f"Run {run_id}  slow on dev  cancelled" in out
    # the slot is free again: the next run is handed off and succeeds
    assert TITLE.match(_run(served, "quick", expect=0).stdout.splitlines()[0])


@pytest.mark.timeout(120)
def test_without_a_live_worker_the_run_is_unchanged(tmp_path: Path):
    c = Cluster(tmp_path)
    try:
        c.configure(JOBS)
        proc = _run(c, "quick", expect=0)
        assert re.match(r"^Run 1: quick on dev$", proc.stdout.splitlines()[0]), proc.stdout[:300]
        assert "handed to" not in proc.stdout and "Completed successfully" in proc.stdout
        assert len(c.store.runs.get_run(1).worker_id.split(":")) == 2  # host:pid: this CLI ran it
        # what counts as a live worker slot: the rule of dockyard status, on this host
        app = App.open(c.config, c.store_url)
        try:
            host = socket.gethostname()
            c.store.leases.register_process("h:1:worker:stopped", "worker", host, 1)
            c.store.leases.stop_process("h:1:worker:stopped")
            stale = clock.now() - timedelta(seconds=6)  # server.lost_after_seconds is 5
            c.store.leases.register_process("h:2:worker:stale", "worker", host, 2, now=stale)
            c.store.leases.register_process("elsewhere:3:worker:x", "worker", "elsewhere", 3)
            c.store.leases.register_process("h:4:scheduler:x", "scheduler", host, 4)
            assert not app.handoff.available() and app.handoff.start("quick") is None
            c.store.leases.register_process("h:5:worker:live", "worker", host, 5)
            assert [p["id"] for p in app.handoff.live_workers()] == ["h:5:worker:live"]
            assert app.handoff.available()
            app.config.runner.hand_off = False
            assert not app.handoff.available()
        finally:
            app.close()
    finally:
        c.cleanup()


@pytest.mark.timeout(120)
def test_a_handed_off_run_left_without_worker_ends_the_cli_with_an_error(tmp_path: Path):
    """A slot that registered and then died (no heartbeat, no clean stop): the run was queued
    for it; once no slot is live for server.lost_after_seconds the CLI says so and exits 1."""
    c = Cluster(tmp_path)
    try:
        c.configure(JOBS)
        c.cli("jobs")  # the store, migrated
        c.store.leases.register_process("h:9:worker:gone", "worker", socket.gethostname(), 9)
        started = time.monotonic()
        proc = _run(c, "quick", expect=1, timeout=60)
        assert TITLE.match(proc.stdout.splitlines()[0]), proc.stdout[:300]
        assert "Error: run 1 is queued and no worker slot is alive any more" in proc.stderr, proc.stderr
        assert "dockyard cancel 1" in proc.stderr
        assert time.monotonic() - started < 40
        assert c.store.runs.get_run(1).status.value == "queued"  # the server's to run
    finally:
        c.cleanup()
