"""A foreground ``dockyard run`` never overlaps a running run of the same job (unless the
job allows it), and a foreground process only reaps the runs of dead foreground processes,
never a worker's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from dockyard.app import App
from dockyard.domain import RunStatus


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _active_run(project, job: str, owner: str) -> int:
    app = App.open(project.config)
    try:
        app.sync()
        record, _ = app.job(job)
        run_id = app.store.runs.create_run(record.id, record.name, "dev", ["dbt parse"], trigger="manual")
        app.store.runs.transition_run(run_id, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id=owner)
        app.store.runs.transition_run(run_id, RunStatus.RUNNING, expected={RunStatus.STARTING})
        return run_id
    finally:
        app.close()


def test_a_foreground_run_refuses_to_overlap_a_running_run(sqlite_project):
    project = sqlite_project
    project.add_job("""\
        - name: quick
          environment: dev
          commands: ["dbt parse"]
        - name: quick-overlapping
          environment: dev
          commands: ["dbt parse"]
          allow_overlap: true
    """)
    busy = _active_run(project, "quick", f"{socket.gethostname()}:{os.getpid()}")  # alive: this test
    out = project.cli("run", "quick", check=1)
    assert "Traceback" not in out.stderr
    assert f"Error: job 'quick' already has run {busy} running" in out.stderr, out.stderr
    assert "dockyard trigger" in out.stderr and "allow_overlap" in out.stderr
    with project.store() as store:
        assert [r.id for r in store.runs.list_runs(job="quick", limit=None)] == [busy], "a refused run was recorded"
    # a job that allows overlap runs alongside
    _active_run(project, "quick-overlapping", f"{socket.gethostname()}:{os.getpid()}")
    assert project.run_json("quick-overlapping")["status"] == "success"


def test_a_dead_foreground_owner_is_reaped_but_never_a_worker_run(sqlite_project):
    project = sqlite_project
    project.add_job("""\
        - name: quick
          environment: dev
          commands: ["dbt parse"]
        - name: other
          environment: dev
          commands: ["dbt parse"]
    """)
    dead = _dead_pid()
    host = socket.gethostname()
    # a worker id ends in a random tag that may be all digits: it must not be read as a pid
    worker_run = _active_run(project, "other", f"{host}:{dead}:worker:123456")
    foreground_run = _active_run(project, "quick", f"{host}:{dead}")
    project.cli("runs", check=0)
    with project.store() as store:
        assert store.runs.get_run(foreground_run).reason == "worker_lost"
        assert store.runs.get_run(worker_run).status.value == "running"  # the scheduler's reaper decides
    # and the run that was lost no longer blocks the job
    assert project.run_json("quick")["status"] == "success"
