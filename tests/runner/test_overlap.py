"""Overlapping runs of one project (real dbt on DuckDB): each run reads only its own
artifacts, partial parsing survives between runs, and steps that write into the project
folder (dbt deps) take turns (issue 8, defects 2 and 4)."""

from __future__ import annotations

import json
import shlex
import threading
import time
from pathlib import Path

import pytest

from dockyard.domain import RunStatus, StepStatus
from dockyard.runner.executor import Executor
from dockyard.runner.workspace import ProjectLock

from .conftest import FakeRecorder, base_env, make_plan

pytestmark = pytest.mark.slow

SLOW = "dbt run --select slow_model --vars '{slow: true}'"


def cmds(*texts: str) -> list[list[str]]:
    return [shlex.split(t) for t in texts]


def artifact(plan, step: int, name: str) -> dict:
    return json.loads((plan.run_dir / "artifacts" / f"step-{step}" / name).read_text())


class Background:
    """An executor running in a thread (subprocess mode: no fork from a threaded process)."""

    def __init__(self, plan, on_log=None, tick=None):
        self.plan = plan
        self.rec = FakeRecorder(on_log=on_log)
        if tick is not None:
            self.rec.tick = tick  # the worker's hook: its heartbeat
        self.executor = Executor(plan, self.rec)
        self.outcome = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.outcome = self.executor.run()

    def start(self) -> Background:
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"run {self.plan.run_id} did not end within {timeout} s"


def test_overlapping_runs_in_one_environment_record_only_their_own_artifacts(mini, tmp_path):
    # run 1 builds the slow model; run 2 (another job, same environment, same target folder
    # in the plan) parses, runs stg_numbers and ends while run 1's model is still running
    slow_started = threading.Event()
    plan_a = make_plan(mini, tmp_path, cmds(SLOW), mode="subprocess", grace=3, run_id=1)
    # (on DuckDB two processes cannot open one database file: run 2 uses a file of its own)
    env_b = base_env(tmp_path, MINI_DB_PATH=str(tmp_path / "b.duckdb"))
    plan_b = make_plan(mini, tmp_path, cmds("dbt run --select stg_numbers"), mode="subprocess", env=env_b, run_id=2)
    assert plan_a.target_path == plan_b.target_path

    def on_log(index, line):
        if "START sql table model main.slow_model" in line:
            slow_started.set()

    a = Background(plan_a, on_log).start()
    try:
        assert slow_started.wait(120), a.rec.text()
        rec_b = FakeRecorder()
        outcome_b = Executor(plan_b, rec_b).run()
    finally:
        a.executor.cancel()
        a.join(60)

    assert outcome_b.status is RunStatus.SUCCESS, rec_b.text()
    assert a.outcome.status is RunStatus.CANCELLED and a.rec.status(1) is StepStatus.CANCELLED
    # run 2's dbt parsed (writing manifest.json) and wrote run_results.json after run 1's
    # step started: run 1 must still record its own
    assert set(rec_b.final_nodes(1)) == {"model.mini.stg_numbers"}
    assert set(a.rec.final_nodes(1)) == {"model.mini.slow_model"}, a.rec.final_nodes(1)
    manifest_a = artifact(plan_a, 1, "manifest.json")
    assert "model.mini.slow_model" in manifest_a["nodes"]  # enabled by run 1's vars only
    assert "model.mini.slow_model" not in artifact(plan_b, 1, "manifest.json")["nodes"]
    # (dbt interrupted lists no result for the node it was running)
    assert {r["unique_id"] for r in artifact(plan_a, 1, "run_results.json")["results"]} <= {"model.mini.slow_model"}
    assert {r["unique_id"] for r in artifact(plan_b, 1, "run_results.json")["results"]} == {"model.mini.stg_numbers"}
    # each run's target folder is gone with it; the environment's keeps the partial parse
    assert not (plan_a.run_dir / "target").exists() and not (plan_b.run_dir / "target").exists()
    assert (plan_a.target_path / "partial_parse.msgpack").is_file()


def test_partial_parsing_survives_between_runs(mini, tmp_path):
    first = make_plan(mini, tmp_path, cmds("dbt parse"), run_id=1)
    rec1 = FakeRecorder()
    assert Executor(first, rec1).run().status is RunStatus.SUCCESS
    assert "Unable to do partial parsing because saved manifest not found" in rec1.text(1)
    shared = first.target_path / "partial_parse.msgpack"
    assert shared.is_file()

    published = shared.stat().st_mtime_ns

    second = make_plan(mini, tmp_path, cmds("dbt ls", "dbt run --select stg_numbers"), run_id=2)
    rec2 = FakeRecorder()
    assert Executor(second, rec2).run().status is RunStatus.SUCCESS, rec2.text()
    assert "Unable to do partial parsing" not in rec2.text(), rec2.text()
    assert rec2.final_nodes(2)["model.mini.stg_numbers"].status == "success"
    assert shared.stat().st_mtime_ns == published  # nothing re-parsed: nothing published

    # a changed model: the run re-parses it (partially) and publishes its partial parse
    model = mini / "models" / "numbers_summary.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    third = make_plan(mini, tmp_path, cmds("dbt parse"), run_id=3)
    rec3 = FakeRecorder()
    assert Executor(third, rec3).run().status is RunStatus.SUCCESS, rec3.text()
    assert "Unable to do partial parsing" not in rec3.text(), rec3.text()
    assert shared.stat().st_mtime_ns != published
    assert not list(shared.parent.glob("dev/.*.tmp"))  # the temporary copy was moved into place


def test_compile_only_steps_report_their_nodes_compiled(mini, tmp_path):
    plan = make_plan(mini, tmp_path, cmds("dbt run", "dbt docs generate", "dbt compile"), run_id=1)
    rec = FakeRecorder()
    assert Executor(plan, rec).run().status is RunStatus.SUCCESS, rec.text()
    ran = rec.final_nodes(1)
    assert ran and {n.status for n in ran.values()} == {"success"}
    for step in (2, 3):
        compiled = rec.final_nodes(step)
        assert set(ran) <= set(compiled)  # every model, plus the tests
        assert {n.status for n in compiled.values()} == {"compiled"}, step
    assert {r.name for r in rec.artifact_refs[2]} >= {"catalog.json", "index.html", "manifest.json"}


def local_package(tmp_path: Path, project: Path) -> None:
    pkg = tmp_path / "mini_pkg"
    (pkg / "macros").mkdir(parents=True)
    (pkg / "dbt_project.yml").write_text('name: mini_pkg\nversion: "1.0"\nconfig-version: 2\n')
    (pkg / "macros" / "hello.sql").write_text("{% macro hello() %}'hello'{% endmacro %}\n")
    (project / "packages.yml").write_text("packages:\n  - local: ../mini_pkg\n")


def test_concurrent_dbt_deps_in_one_project_take_turns(mini, tmp_path):
    local_package(tmp_path, mini)
    # a dbt_packages left by an earlier install with many files: dbt deps deletes it first,
    # which takes long enough for a second dbt deps to delete the same files under it
    old = mini / "dbt_packages" / "old_pkg"
    for d in range(100):
        sub = old / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(200):
            (sub / f"f{f}.sql").write_text("select 1\n")
    plans = [make_plan(mini, tmp_path, cmds("dbt deps", "dbt deps"), mode="subprocess", run_id=i) for i in (1, 2)]
    runs = [Background(plan).start() for plan in plans]
    for run in runs:
        run.join(180)
    for run in runs:
        assert run.outcome.status is RunStatus.SUCCESS, run.rec.text()
    installed = mini / "dbt_packages" / "mini_pkg"
    assert (installed / "macros" / "hello.sql").read_text().startswith("{% macro hello()")
    assert sorted(p.name for p in (mini / "dbt_packages").iterdir()) == ["mini_pkg"]
    # the two runs' first steps did not overlap: one waited for the other's lock
    text = "\n".join(run.rec.text(1) for run in runs)
    assert "waiting for the project lock" in text and "took the project lock after" in text


def test_a_deps_step_waits_for_the_project_lock_with_heartbeats(mini, tmp_path):
    local_package(tmp_path, mini)
    plan = make_plan(mini, tmp_path, cmds("dbt deps"), mode="subprocess", run_id=7)
    other = ProjectLock(plan.target_path.parent / "project.lock")
    assert other.try_acquire("run 3 step 1")
    waiting = threading.Event()
    ticks = []

    def on_log(index, line):
        if "waiting for the project lock" in line:
            waiting.set()

    run = Background(plan, on_log, tick=lambda: ticks.append(time.monotonic())).start()
    try:
        assert waiting.wait(30), run.rec.text()
        time.sleep(1.5)
        assert "Running with dbt" not in run.rec.text()  # dbt waits for the lock
        assert "(run 3 step 1 (pid" in run.rec.text()  # the log says who holds it
        assert len(ticks) >= 5  # the worker's heartbeat goes on meanwhile
    finally:
        other.release()
    run.join(120)
    assert run.outcome.status is RunStatus.SUCCESS, run.rec.text()
    assert "took the project lock after" in run.rec.text(1)
    assert (mini / "dbt_packages" / "mini_pkg").exists()


def test_a_run_cancelled_while_waiting_for_the_project_lock_never_starts_dbt(mini, tmp_path):
    plan = make_plan(mini, tmp_path, cmds("dbt clean", "dbt parse"), mode="subprocess", run_id=8)
    other = ProjectLock(plan.target_path.parent / "project.lock")
    assert other.try_acquire("run 3 step 1")
    waiting = threading.Event()
    run = Background(plan, lambda i, line: "waiting for the project lock" in line and waiting.set())
    run.start()
    try:
        assert waiting.wait(30), run.rec.text()
        run.executor.cancel()
        run.join(30)
    finally:
        other.release()
    assert (run.outcome.status, run.outcome.reason) == (RunStatus.CANCELLED, "cancelled")
    assert run.rec.status(1) is StepStatus.CANCELLED and run.rec.status(2) is StepStatus.SKIPPED
    assert run.executor.pids == []  # dbt never started
