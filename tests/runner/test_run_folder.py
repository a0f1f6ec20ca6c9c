"""The run folder changing under a running run (issue 7, item 12), with real dbt on DuckDB:
the run folder deleted (``rm -rf``) in the middle of a step and between steps, a step log
that cannot be opened, a disk that refuses writes. Never an exception out of the executor
(which the App records as ``internal_error`` with a traceback): the run finishes correctly,
or the step fails saying why."""

from __future__ import annotations

import shlex
import shutil

import pytest

from dockyard.domain import RunStatus, StepStatus
from dockyard.runner.executor import Executor

from .conftest import FakeRecorder, make_plan


def cmds(*texts: str) -> list[list[str]]:
    return [shlex.split(t) for t in texts]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_run_folder_deleted_during_a_step_and_between_steps(mini, tmp_path):
    plan = make_plan(mini, tmp_path, cmds("dbt run", "dbt parse"))
    rec = FakeRecorder()
    deleted: list[str] = []

    def on_log(index, line):
        # while dbt builds its first model: dbt goes on writing, dockyard goes on logging
        if index == 1 and " START sql " in line and not deleted:
            shutil.rmtree(plan.run_dir)
            deleted.append("mid-step")

    finish = rec.step_finished
    kept: dict[str, object] = {}

    def step_finished(index, status, exit_code, at, log_path):
        finish(index, status, exit_code, at, log_path)
        if index == 1:  # between the steps
            kept["log"] = (plan.run_dir / "logs" / "step-1.log").read_text()
            kept["run_results"] = (plan.run_dir / "artifacts" / "step-1" / "run_results.json").is_file()
            shutil.rmtree(plan.run_dir)
            deleted.append("between")

    rec.on_log = on_log
    rec.step_finished = step_finished
    outcome = Executor(plan, rec).run()

    assert deleted == ["mid-step", "between"]
    assert (outcome.status, outcome.reason) == (RunStatus.SUCCESS, None)
    assert [rec.status(i) for i in (1, 2)] == [StepStatus.SUCCESS, StepStatus.SUCCESS]
    # step 1's log was written again, whole, from the file dockyard kept open
    log1 = kept["log"]
    assert " START sql " in log1 and "Completed successfully" in log1
    assert "disappeared while the step ran" in log1
    # artifacts were stored after the deletion, under a recreated folder, and reconciled
    assert kept["run_results"]
    assert {r.name for r in rec.artifact_refs[1]} >= {"run_results.json", "manifest.json"}
    assert rec.final_nodes(1)["model.mini.stg_numbers"].status == "success"
    # step 2 ran after the folder had gone again
    assert (plan.run_dir / "logs" / "step-2.log").read_text().strip()
    assert (plan.run_dir / "artifacts" / "step-2" / "manifest.json").is_file()


def test_a_step_log_that_cannot_be_opened_fails_the_step(mini, tmp_path):
    plan = make_plan(mini, tmp_path, cmds("dbt parse", "dbt parse"))
    (plan.run_dir / "logs" / "step-1.log").mkdir(parents=True)  # a folder where the file goes
    rec = FakeRecorder()
    ex = Executor(plan, rec)
    outcome = ex.run()
    assert (outcome.status, outcome.reason) == (RunStatus.ERROR, "step_failed")
    assert [rec.status(i) for i in (1, 2)] == [StepStatus.ERROR, StepStatus.SKIPPED]
    assert "cannot write the step log" in rec.text(1) and "dbt was not started" in rec.text(1)
    assert not ex.pids


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_disk_that_refuses_writes_fails_the_step_with_the_reason(mini, tmp_path):
    plan = make_plan(mini, tmp_path, cmds("dbt parse", "dbt parse"))
    logs = plan.run_dir / "logs"
    logs.mkdir(parents=True)
    (logs / "step-1.log").symlink_to("/dev/full")  # every write: ENOSPC
    (plan.run_dir / "artifacts").mkdir()
    (plan.run_dir / "artifacts" / "step-1").write_text("not a folder")
    rec = FakeRecorder()
    outcome = Executor(plan, rec).run()
    assert (outcome.status, outcome.reason) == (RunStatus.ERROR, "step_failed")
    assert rec.finished[1][:2] == (StepStatus.ERROR, 0)  # dbt itself succeeded
    assert rec.status(2) is StepStatus.SKIPPED
    text = rec.text(1)
    assert "could not write the step log" in text and "No space left on device" in text
    assert "could not store artifact manifest.json" in text
