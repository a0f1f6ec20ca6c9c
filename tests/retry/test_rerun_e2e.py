"""``dockyard rerun`` end to end: real dbt on DuckDB (examples/shop), the real CLI."""

from __future__ import annotations

import json

from tests.e2e.conftest import SLOW_MODEL

FCT = "models/marts/fct_orders.sql"
MARTS = {"model.shop.fct_orders", "model.shop.customer_ltv", "model.shop.dim_customers"}
STAGING = {"model.shop.stg_orders", "model.shop.stg_customers", "model.shop.stg_products", "model.shop.stg_order_items"}


def break_fct_orders(project) -> str:
    original = (project.path / FCT).read_text()
    assert "    orders.status,\n" in original
    (project.path / FCT).write_text(
        original.replace("    orders.status,\n", "    orders.status,\n    orders.no_such_column,\n")
    )
    return original


def rerun_json(project, *args: str, expect: int) -> dict:
    return json.loads(project.cli("rerun", *args, "--json", check=expect).stdout)


def step_nodes(run: dict, index: int) -> dict[str, dict]:
    return {n["unique_id"]: n for n in run["nodes"] if n["step_index"] == index}


def test_rerun_from_failure_reruns_only_the_failed_and_never_reached_nodes(sqlite_project):
    project = sqlite_project
    original = break_fct_orders(project)
    project.add_job("""\
        - name: retried
          environment: prod
          commands: ["dbt seed", "dbt run", "dbt test"]
    """)
    first = project.run_json("retried", expect=1)
    assert [s["status"] for s in first["steps"]] == ["success", "error", "skipped"]
    before = step_nodes(first, 2)
    assert before["model.shop.fct_orders"]["status"] == "error"
    assert "no_such_column" in before["model.shop.fct_orders"]["message"]
    assert {u for u, n in before.items() if n["status"] == "skipped"} == MARTS - {"model.shop.fct_orders"}
    assert {u for u, n in before.items() if n["status"] == "success"} == STAGING

    (project.path / FCT).write_text(original)  # the fix
    second = rerun_json(project, str(first["id"]), "--from-failure", expect=0)

    assert second["status"] == "success" and second["trigger"] == "retry"
    assert second["attempt"] == 2 and second["retry_of"] == first["id"]
    assert second["job"] == "retried" and second["environment"] == "prod" and second["id"] != first["id"]
    commands = [s["command"] for s in second["steps"]]
    assert len(commands) == 2 and commands[0].startswith("dbt run --select ") and commands[1] == "dbt test"
    assert not any(c.startswith("dbt seed") for c in commands)  # dbt seed succeeded: not repeated
    assert all(s["status"] == "success" for s in second["steps"])
    ran = step_nodes(second, 1)
    assert set(ran) == MARTS  # the failed model and its never-reached children, nothing else
    assert all(n["status"] == "success" for n in ran.values())
    assert not STAGING & set(ran)
    assert not any(n["resource_type"] == "seed" for n in second["nodes"])
    tested = step_nodes(second, 2)
    assert tested and all(n["resource_type"] in ("test", "unit_test") for n in tested.values())
    assert {n["status"] for n in tested.values()} <= {"pass", "warn"}
    # the record read back agrees, and the run list shows the retry first
    shown = json.loads(project.cli("show", str(second["id"]), "--json", check=0).stdout)
    assert shown["retry_of"] == first["id"] and shown["attempt"] == 2
    runs = json.loads(project.cli("runs", "--json", check=0).stdout)
    assert [(r["id"], r["trigger"]) for r in runs[:2]] == [(second["id"], "retry"), (first["id"], "manual")]


def test_rerun_all_attempt_chain_and_refusals(sqlite_project):
    project = sqlite_project
    original = break_fct_orders(project)
    project.add_job("""\
        - name: chain
          environment: dev
          commands: ["dbt seed", "dbt run"]
    """)
    first = project.run_json("chain", expect=1)
    # --all: every command again, still failing
    second = rerun_json(project, str(first["id"]), "--all", expect=1)
    assert [s["command"] for s in second["steps"]] == ["dbt seed", "dbt run"]
    assert (second["attempt"], second["retry_of"], second["status"]) == (2, first["id"], "error")
    # from the failure of the retry, still failing: attempt 3
    third = rerun_json(project, str(second["id"]), expect=1)
    assert (third["attempt"], third["retry_of"]) == (3, second["id"])
    assert len(third["steps"]) == 1 and third["steps"][0]["command"].startswith("dbt run --select ")
    (project.path / FCT).write_text(original)
    fourth = rerun_json(project, str(third["id"]), expect=0)
    assert (fourth["attempt"], fourth["status"]) == (4, "success")
    assert set(step_nodes(fourth, 1)) == MARTS
    # a run that succeeded has nothing to re-run; an unknown run is an error
    refused = project.cli("rerun", str(fourth["id"]), check=1)
    assert f"run {fourth['id']} succeeded" in refused.stderr and "Traceback" not in refused.stderr
    missing = project.cli("rerun", "9999")
    assert missing.returncode != 0 and "9999" in missing.stderr and "Traceback" not in missing.stderr
    # the human output names the retry
    text = project.cli("rerun", str(first["id"]), "--quiet", check=0).stdout
    assert f"rerun of run {first['id']} from failure" in text and "attempt 2" in text


def test_rerun_after_a_timeout_excludes_what_completed(sqlite_project):
    project = sqlite_project
    project.write("models/slow.sql", SLOW_MODEL)
    project.add_job("""\
        - name: slow
          environment: dev
          commands: ["dbt seed", "dbt run", "dbt test"]
          timeout_seconds: 25
    """)
    first = project.run_json("slow", expect=1)
    assert first["reason"] == "timeout"
    assert [s["status"] for s in first["steps"]] == ["success", "cancelled", "skipped"]
    done = {u for u, n in step_nodes(first, 2).items() if n["status"] == "success"}
    assert STAGING <= done and "model.shop.slow" not in done
    project.write("models/slow.sql", "select 1 as n\n")  # the fix
    second = rerun_json(project, str(first["id"]), expect=0)
    command = second["steps"][0]["command"]
    assert command.startswith("dbt run --exclude ") and "package:shop,fqn:stg_orders" in command
    ran = set(step_nodes(second, 1))
    assert "model.shop.slow" in ran and not ran & done
    assert ran == {"model.shop.slow"} | (STAGING | MARTS) - done
    assert [s["command"] for s in second["steps"]][1:] == ["dbt test"]
