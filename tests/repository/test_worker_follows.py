"""A running ``dockyard worker`` (a real process, fork mode, dbt preloaded) follows the commit
another process deploys: its next run runs the new commit's model code and a job that only
the new commit declares."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from dockyard.app import App
from repository.conftest import Remote, server_folder, tiny_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SECOND_JOB = """\
  - name: Second
    environment: dev
    commands: ["dbt run --select answer"]
"""


def _wait_final(app: App, run_id: int, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = app.runs.get(run_id)
        if run.status.value in ("success", "error", "cancelled"):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end in {timeout} s")


def test_a_running_worker_runs_the_newly_deployed_commit(tmp_path: Path, monkeypatch):
    db = tmp_path / "db"
    db.mkdir()
    monkeypatch.setenv("TINY_DB", str(db))
    remote = Remote(tmp_path)
    remote.commit(tiny_project(1), "one")
    folder = server_folder(tmp_path, str(remote.bare), "server: {heartbeat_seconds: 0.5, poll_seconds: 0.1}\n")
    config = folder / "dockyard.yml"
    config.write_text(config.read_text().replace("mode: subprocess", "mode: fork"))
    app = App.open(config)
    assert app.deploy()["status"] == "ok"
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "worker", "--config", str(config)],
        cwd=folder,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        first = _wait_final(app, app.triggers.trigger("Build", {}))
        assert first.status.value == "success", (tmp_path / "worker.log").read_text()[-3000:]
        c2 = remote.commit(tiny_project(2, SECOND_JOB), "two")
        assert app.deploy()["status"] == "ok"  # deployed by this process, not the worker
        second = _wait_final(app, app.triggers.trigger("Second", {}))
        assert second.status.value == "success", app.runs.logs(second.id)[-3000:]
        assert second.git_sha == c2
        with duckdb.connect(str(db / "dev.duckdb"), read_only=True) as conn:
            assert conn.execute("select v from main.answer").fetchone()[0] == 2
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
