"""integrations.nodes: which run's result a per-model task takes (the newest of the root's
family with a final result; waiting while a newer one goes on), what fails it."""

from __future__ import annotations

from dockyard.client import Run
from dockyard.integrations.nodes import decide, family, retry_cause

A, B = "model.p.a", "model.p.b"


def run(id: int, status: str, nodes: dict[str, str] | None = None, cause: str = "", reason: str | None = None) -> Run:
    results = [{"unique_id": k, "status": v, "message": f"{v} msg"} for k, v in (nodes or {}).items()]
    return Run.of({"id": id, "status": status, "nodes": results, "cause": cause, "job_id": 1, "reason": reason})


def test_family_is_the_root_and_its_retries_newest_first():
    root = run(5, "error")
    later = [
        run(6, "success", cause=retry_cause(5, ["a"])),
        run(7, "queued", cause="other"),
        run(8, "queued", cause=retry_cause(4, ["a"])),
    ]
    assert [r.id for r in family(root, later)] == [6, 5]


def test_newest_final_result_wins_and_a_running_newer_run_is_waited_for():
    root = run(5, "error", {A: "error", B: "skipped"})
    retried = run(6, "success", {A: "success", B: "success"})
    outcome = decide([retried, root], [A, B])
    assert outcome.done and not outcome.failures and outcome.results[B]["run_id"] == 6
    going = run(6, "running", {A: "success"})
    assert not decide([going, root], [B]).done  # B may still come from run 6
    assert decide([going, root], [A]).results[A]["run_id"] == 6


def test_failures_carry_dbt_messages_skips_and_nodes_not_run():
    failed = decide([run(5, "error", {A: "error", B: "skipped"})], [A, B])
    assert failed.failures == [
        "model.p.a error in run 5: error msg",
        "model.p.b skipped in run 5: skipped msg",
    ]
    assert not decide([run(5, "running", {A: "started"})], [A]).done
    missing = decide([run(5, "error", reason="step 1 failed")], [A])
    assert missing.done and missing.failures == ["model.p.a was not run: run 5 ended error (step 1 failed)"]
    unselected = decide([run(5, "success")], [A])
    assert unselected.done and not unselected.failures and unselected.results[A]["status"] == "not run"


def test_importing_dockyard_needs_no_orchestrator():
    import subprocess
    import sys

    code = (
        "import sys, dockyard.client, dockyard.integrations.nodes, dockyard.integrations.render, dockyard.cli.main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'prefect', 'dagster')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
