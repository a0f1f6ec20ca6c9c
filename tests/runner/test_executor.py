"""The executor against real dbt on DuckDB (and PostgreSQL where marked), in both modes."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import threading
import time

import pytest

from dockyard.domain import RunStatus, StepStatus
from dockyard.runner.executor import Executor
from dockyard.runner.invocation import DbtInvocation

from .conftest import MODES, FakeRecorder, base_env, group_members, make_plan

pytestmark = pytest.mark.slow


def run(plan) -> tuple:
    rec = FakeRecorder()
    ex = Executor(plan, rec)
    t0 = time.monotonic()
    outcome = ex.run()
    return outcome, rec, ex, time.monotonic() - t0


def cmds(*texts: str) -> list[list[str]]:
    return [shlex.split(t) for t in texts]


def assert_no_dbt_left(ex: Executor) -> None:
    assert ex.pids
    for pid in ex.pids:
        assert group_members(pid) == [], f"process group {pid} still has members"


@pytest.mark.parametrize("mode", MODES)
def test_success_with_node_results(mini, tmp_path, mode):
    plan = make_plan(mini, tmp_path, cmds("dbt run", "dbt test", "dbt parse"), mode=mode)
    outcome, rec, ex, _ = run(plan)

    assert outcome.status is RunStatus.SUCCESS and outcome.reason is None
    assert not outcome.has_warnings
    assert [rec.finished[i][:2] for i in (1, 2, 3)] == [(StepStatus.SUCCESS, 0)] * 3
    assert set(rec.started) == {1, 2, 3}

    nodes = rec.final_nodes(1)
    stg = nodes["model.mini.stg_numbers"]
    assert (stg.name, stg.resource_type, stg.status) == ("stg_numbers", "model", "success")
    assert stg.started_at and stg.finished_at and stg.started_at <= stg.finished_at
    assert stg.execution_time_s and stg.execution_time_s > 0
    assert stg.thread and stg.thread.startswith("Thread-")
    assert stg.compiled_path and stg.compiled_path.endswith("stg_numbers.sql")
    assert stg.adapter_response == {"_message": "OK"}
    assert stg.rows_affected is None  # dbt-duckdb reports no row count (see the postgres test)
    assert nodes["model.mini.numbers_summary"].status == "success"
    assert "model.mini.slow_model" not in nodes  # disabled
    tests = rec.final_nodes(2)
    assert {n.status for n in tests.values()} == {"pass"}
    assert len(tests) == 3

    # the log: dbt's human console text, live and on disk, identical
    log_path = rec.finished[1][3]
    assert log_path == "logs/step-1.log"
    on_disk = (plan.run_dir / log_path).read_text().splitlines()
    assert on_disk == [line for i, line in rec.lines if i == 1]
    text = "\n".join(on_disk)
    assert "Running with dbt=" in text and "Completed successfully" in text
    assert "OK created sql table model main.stg_numbers" in text
    assert "\x1b" not in text and '{"info"' not in text

    # artifacts: copied per step, with size and sha256; step 3 (parse) writes no run_results
    names = {i: {r.name for r in refs} for i, refs in rec.artifact_refs.items()}
    assert {"manifest.json", "run_results.json"} <= names[1]
    assert "run_results.json" in names[2]
    assert "run_results.json" not in names[3] and "manifest.json" in names[3]
    for refs in rec.artifact_refs.values():
        for ref in refs:
            data = (plan.run_dir / "artifacts" / ref.path).read_bytes()
            assert ref.size == len(data) and ref.sha256 == hashlib.sha256(data).hexdigest()
    # the run's dbt wrote into a folder of its own, removed at the end; the environment's
    # folder keeps only the partial parse, for the next run
    assert not (plan.run_dir / "target").exists()
    assert sorted(p.name for p in plan.target_path.iterdir()) == ["partial_parse.msgpack"]
    assert_no_dbt_left(ex)


@pytest.mark.parametrize("mode", MODES)
def test_failing_model(mini, tmp_path, mode):
    plan = make_plan(mini, tmp_path, cmds("dbt run --vars '{fail: true}'", "dbt test"), mode=mode)
    outcome, rec, ex, _ = run(plan)

    assert (outcome.status, outcome.reason) == (RunStatus.ERROR, "step_failed")
    assert rec.finished[1][:2] == (StepStatus.ERROR, 1)
    assert rec.finished[2][0] is StepStatus.SKIPPED
    assert rec.finished[2][1] is None and rec.finished[2][3] == ""
    assert 2 not in rec.started
    nodes = rec.final_nodes(1)
    bad = nodes["model.mini.bad_model"]
    assert bad.status == "error"
    assert "a_table_that_does_not_exist" in bad.message
    assert nodes["model.mini.after_bad"].status == "skipped"
    assert nodes["model.mini.stg_numbers"].status == "success"
    assert "ERROR creating sql table model main.bad_model" in rec.text(1)
    assert_no_dbt_left(ex)


@pytest.mark.parametrize("mode", MODES)
def test_warn_test_is_success_with_warnings(mini, tmp_path, mode):
    plan = make_plan(mini, tmp_path, cmds("dbt build --vars '{warn: true}'"), mode=mode)
    outcome, rec, _, _ = run(plan)
    assert (outcome.status, outcome.reason, outcome.has_warnings) == (RunStatus.SUCCESS, None, True)
    assert rec.finished[1][:2] == (StepStatus.SUCCESS, 0)
    warn = rec.final_nodes(1)["test.mini.warn_on_small_totals"]
    assert warn.status == "warn"
    assert warn.message == "Got 5 results, configured to warn if != 0"


@pytest.mark.parametrize("mode", MODES)
def test_source_freshness(mini, tmp_path, mode):
    plan = make_plan(
        mini,
        tmp_path,
        cmds(
            "dbt run --select tag:freshness",
            "dbt source freshness --select source:raw.events",
            "dbt source freshness",
        ),
        mode=mode,
    )
    outcome, rec, _, _ = run(plan)
    # step 2 warns, step 3 has a source at error: dbt exits 1
    assert (outcome.status, outcome.reason, outcome.has_warnings) == (RunStatus.ERROR, "step_failed", True)
    assert rec.finished[2][:2] == (StepStatus.SUCCESS, 0)
    assert rec.finished[3][:2] == (StepStatus.ERROR, 1)
    events = rec.final_nodes(2)["source.mini.raw.events"]
    assert (events.status, events.resource_type) == ("warn", "source")
    assert "sources.json" in {r.name for r in rec.artifact_refs[2]}
    assert rec.final_nodes(3)["source.mini.raw.stale"].status == "error"


@pytest.mark.parametrize("mode", MODES)
def test_timeout_interrupts_and_leaves_no_process(mini, tmp_path, mode):
    plan = make_plan(
        mini,
        tmp_path,
        cmds("dbt run --select slow_model --vars '{slow: true}'", "dbt test"),
        mode=mode,
        timeout=6,
        grace=5,
    )
    outcome, rec, ex, elapsed = run(plan)
    assert (outcome.status, outcome.reason) == (RunStatus.ERROR, "timeout")
    assert rec.finished[1][0] is StepStatus.CANCELLED
    assert rec.finished[2][0] is StepStatus.SKIPPED
    assert elapsed < 6 + 5 + 5 + 3
    assert "run timed out after 6 s" in rec.text(1)
    assert_no_dbt_left(ex)


@pytest.mark.parametrize("mode", MODES)
def test_cancel_from_another_thread(mini, tmp_path, mode):
    plan = make_plan(
        mini, tmp_path, cmds("dbt run --select slow_model --vars '{slow: true}'", "dbt test"), mode=mode, grace=5
    )
    rec = FakeRecorder()
    ex = Executor(plan, rec)
    fired = threading.Event()

    def on_log(index, line):
        # started from the recorder once dbt runs the slow model: the fork happened already
        if "START sql table model main.slow_model" in line and not fired.is_set():
            fired.set()
            threading.Timer(0.5, ex.cancel).start()

    rec.on_log = on_log
    t0 = time.monotonic()
    outcome = ex.run()
    assert fired.is_set()
    assert (outcome.status, outcome.reason) == (RunStatus.CANCELLED, "cancelled")
    assert rec.finished[1][0] is StepStatus.CANCELLED
    assert rec.finished[2][0] is StepStatus.SKIPPED
    assert time.monotonic() - t0 < 20
    assert "run cancelled" in rec.text(1)
    # live node updates arrived while the model ran, before the step's final batch
    assert any(
        n.unique_id == "model.mini.slow_model" and n.status == "started" for i, batch in rec.node_batches for n in batch
    )
    assert rec.final_nodes(1)["model.mini.slow_model"].status == "error"
    assert_no_dbt_left(ex)


@pytest.mark.parametrize("mode", MODES)
def test_escalates_to_sigterm_when_sigint_is_not_enough(mini, tmp_path, mode, monkeypatch):
    monkeypatch.setattr(DbtInvocation, "interrupt", lambda self: True)  # SIGINT "lost"
    plan = make_plan(
        mini, tmp_path, cmds("dbt run --select slow_model --vars '{slow: true}'"), mode=mode, timeout=5, grace=1
    )
    outcome, rec, ex, elapsed = run(plan)
    assert (outcome.status, outcome.reason) == (RunStatus.ERROR, "timeout")
    status, exit_code, _, _ = rec.finished[1]
    assert status is StepStatus.CANCELLED and exit_code == -15
    assert "sending SIGTERM" in rec.text(1)
    assert elapsed < 15
    assert_no_dbt_left(ex)


@pytest.mark.parametrize("mode", MODES)
def test_secrets_never_stored(mini, tmp_path, mode):
    env_secret = "env-secret-value-42"
    plain = "plain-secret-value-7"
    env = base_env(tmp_path, DBT_ENV_SECRET_X=env_secret, MINI_PLAIN=plain)
    plan = make_plan(
        mini,
        tmp_path,
        cmds(f"dbt run --select echo --vars '{{echo: {env_secret}}}'"),
        mode=mode,
        env=env,
        secrets=[plain],
    )
    outcome, rec, _, _ = run(plan)
    assert outcome.status is RunStatus.SUCCESS

    # the values really went through dbt: its partial parse (kept for the next run) has them
    raw = (plan.target_path / "partial_parse.msgpack").read_bytes()
    assert plain.encode() in raw

    forbidden = [env_secret, plain] + [base64.b64encode(v.encode()).decode() for v in (env_secret, plain)]
    stored = [p for p in plan.run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in stored) and any(p.suffix == ".log" for p in stored)
    for path in stored:
        content = path.read_text(errors="replace")
        for value in forbidden:
            assert value not in content, f"{value} found in {path}"
    copied = json.loads((plan.run_dir / "artifacts" / "step-1" / "run_results.json").read_text())
    assert "***" in json.dumps(copied)
    assert "echo plain=*** var=***" in rec.text(1)
    for value in forbidden:
        assert value not in rec.text()
        for _, batch in rec.node_batches:
            for node in batch:
                assert value not in (node.message or "")
                assert value not in json.dumps(node.adapter_response or {})


@pytest.mark.parametrize("mode", MODES)
def test_cancel_before_start_skips_everything(mini, tmp_path, mode):
    plan = make_plan(mini, tmp_path, cmds("dbt run", "dbt test"), mode=mode)
    rec = FakeRecorder()
    ex = Executor(plan, rec)
    ex.cancel()
    outcome = ex.run()
    assert (outcome.status, outcome.reason) == (RunStatus.CANCELLED, "cancelled")
    assert [rec.finished[i][0] for i in (1, 2)] == [StepStatus.SKIPPED] * 2
    assert not rec.started and not ex.pids


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES)
def test_rows_affected_on_postgres(mini, tmp_path, mode):
    psycopg = pytest.importorskip("psycopg")
    schema = f"dockyard_runner_{mode}_{int(time.time() * 1000) % 10_000_000}"
    try:
        psycopg.connect("host=127.0.0.1 user=postgres dbname=test", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    env = base_env(tmp_path, MINI_PG_SCHEMA=schema)
    plan = make_plan(mini, tmp_path, cmds("dbt run --target pg --select stg_numbers"), mode=mode, env=env)
    try:
        outcome, rec, _, _ = run(plan)
        assert outcome.status is RunStatus.SUCCESS, rec.text()
        stg = rec.final_nodes(1)["model.mini.stg_numbers"]
        assert stg.status == "success"
        assert stg.rows_affected == 5
        assert stg.adapter_response["rows_affected"] == 5
        assert stg.message == "SELECT 5"
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'drop schema if exists "{schema}" cascade')


@pytest.mark.parametrize(
    "args",
    [
        ["--select", "a"],
        ["-s", "a"],
        ["-m", "a"],
        ["--models", "a"],
        ["--model", "a"],
        ["--select=a"],
        ["--selector", "nightly"],
        ["--selector=nightly"],
    ],
)
def test_fresh_sources_keeps_a_steps_own_selection_in_every_spelling(tmp_path, args):
    from dockyard.runner.executor import FreshSources
    from dockyard.runner.plan import StepPlan

    step = StepPlan(2, "dbt build " + " ".join(args), ["build", *args])
    argv = FreshSources(tmp_path).rewrite(step).argv
    assert argv == ["build", *args, "--state", str(tmp_path)]  # no second --select widening it


def test_fresh_sources_selects_what_is_fresher_without_a_selection(tmp_path):
    from dockyard.runner.executor import FreshSources
    from dockyard.runner.plan import StepPlan

    argv = FreshSources(tmp_path).rewrite(StepPlan(2, "dbt build", ["build", "--exclude", "x"])).argv
    assert argv == ["build", "--exclude", "x", "--select", "source_status:fresher+", "--state", str(tmp_path)]
