"""``dockyard run`` end to end: real dbt on DuckDB, every outcome, on both stores."""

from __future__ import annotations

import json
import signal
import time

from tests.e2e.conftest import SLOW_MODEL, dockyard_processes


def test_successful_run_records_everything(project):
    run = project.run_json("Daily Production Run")
    assert run["status"] == "success" and run["status_code"] == 10 and run["reason"] is None
    assert run["has_warnings"] is True  # the shop project has one test at warn severity
    assert [s["command"] for s in run["steps"]] == [
        "dbt seed",
        "dbt source freshness",
        "dbt snapshot",
        "dbt run",
        "dbt test",
        "dbt docs generate",
    ]
    assert all(s["status"] == "success" and s["exit_code"] == 0 for s in run["steps"])
    assert run["duration_s"] > 0 and run["started_at"] and run["finished_at"]
    by_id = {(n["step_index"], n["unique_id"]): n for n in run["nodes"]}
    fct = by_id[(4, "model.shop.fct_orders")]
    assert fct["status"] == "success" and fct["execution_time_s"] > 0 and fct["resource_type"] == "model"
    assert by_id[(1, "seed.shop.raw_orders")]["rows_affected"] == 120
    warn = [n for n in run["nodes"] if n["status"] == "warn"]
    assert [n["name"] for n in warn] == ["warn_stg_customers_unknown_country_code"]
    assert by_id[(2, "source.shop.raw.raw_orders")]["status"] == "pass"
    names = {(a["step_index"], a["name"]) for a in run["artifacts"]}
    assert {
        (4, "manifest.json"),
        (4, "run_results.json"),
        (2, "sources.json"),
        (6, "catalog.json"),
        (6, "index.html"),
    } <= names
    # the record read back later is the same, and show/logs/artifacts work
    shown = json.loads(project.cli("show", str(run["id"]), "--json", check=0).stdout)
    assert shown["status"] == "success" and len(shown["nodes"]) == len(run["nodes"])
    logs = project.cli("logs", str(run["id"]), "--step", "4", check=0).stdout
    assert "dbt run" in logs and "fct_orders" in logs and "Completed successfully" in logs
    listed = project.cli("artifacts", str(run["id"]), "--json", check=0).stdout
    paths = [a["path"] for a in json.loads(listed)]
    assert all(__import__("os").path.isfile(p) for p in paths)
    runs = json.loads(project.cli("runs", "--json", check=0).stdout)
    assert runs[0]["id"] == run["id"] and runs[0]["trigger"] == "manual"


def test_dev_environment_uses_target_name_filter(project):
    prod = project.run_json("Daily Production Run")
    dev = project.run_json("Daily Production Run", "--env", "dev")
    assert dev["environment"] == "dev" and dev["status"] == "success"
    # the dev target keeps only the last 90 days of orders
    import duckdb

    db = project.path.parent / "db"
    with duckdb.connect(str(db / "shop_dev.duckdb"), read_only=True) as con:
        dev_rows = con.execute("select count(*) from dev.stg_orders").fetchone()[0]
    with duckdb.connect(str(db / "shop_prod.duckdb"), read_only=True) as con:
        prod_rows = con.execute("select count(*) from analytics.stg_orders").fetchone()[0]
    assert 0 < dev_rows < prod_rows == 120
    assert prod["id"] != dev["id"]


def test_failing_model_stops_the_job(project):
    project.write(
        "models/marts/broken_orders.sql",
        """\
        select order_id, no_such_column from {{ ref('fct_orders') }}
    """,
    )
    project.write("models/marts/after_broken.sql", "select * from {{ ref('broken_orders') }}\n")
    project.add_job("""\
        - name: broken
          environment: prod
          commands: ["dbt seed", "dbt run", "dbt test"]
    """)
    run = project.run_json("broken", expect=1)
    assert run["status"] == "error" and run["status_code"] == 20 and run["reason"] == "step_failed"
    assert [s["status"] for s in run["steps"]] == ["success", "error", "skipped"]
    assert run["steps"][1]["exit_code"] == 1 and run["steps"][2]["exit_code"] is None
    nodes = {n["name"]: n for n in run["nodes"] if n["step_index"] == 2}
    assert nodes["broken_orders"]["status"] == "error"
    assert "no_such_column" in nodes["broken_orders"]["message"]
    assert nodes["after_broken"]["status"] == "skipped"
    assert nodes["fct_orders"]["status"] == "success"


def test_failing_test_fails_the_run(sqlite_project):
    project = sqlite_project
    project.write("tests/assert_never.sql", "select 1 as failing_row\n")
    project.add_job("""\
        - name: tested
          environment: prod
          commands: ["dbt seed", "dbt run", "dbt test", "dbt docs generate"]
    """)
    run = project.run_json("tested", expect=1)
    assert [s["status"] for s in run["steps"]] == ["success", "success", "error", "skipped"]
    failing = [n for n in run["nodes"] if n["status"] == "fail"]
    assert [n["name"] for n in failing] == ["assert_never"]
    assert run["has_warnings"] is True  # the warn test still warned


def test_warn_only_run_succeeds_with_warnings(sqlite_project):
    sqlite_project.add_job("""\
        - name: warned
          environment: staging
          commands: ["dbt build"]
    """)
    run = sqlite_project.run_json("warned", expect=0)
    assert run["status"] == "success" and run["has_warnings"] is True
    assert sum(1 for n in run["nodes"] if n["status"] == "warn") == 1


def test_timeout_stops_dbt_and_marks_error(project):
    project.write("models/slow.sql", SLOW_MODEL)
    project.add_job("""\
        - name: slow
          environment: dev
          commands: ["dbt seed", "dbt run --select slow", "dbt test"]
          timeout_seconds: 20
    """)  # a cold dbt seed (first parse) takes up to ~11 s on a loaded 2-core machine
    started = time.monotonic()
    run = project.run_json("slow", expect=1)
    assert time.monotonic() - started < 60
    assert run["status"] == "error" and run["reason"] == "timeout"
    assert [s["status"] for s in run["steps"]] == ["success", "cancelled", "skipped"]
    assert not dockyard_processes(str(project.config))


def test_ctrl_c_cancels_the_run(project):
    project.write("models/slow.sql", SLOW_MODEL)
    project.add_job("""\
        - name: slow
          environment: dev
          commands: ["dbt seed", "dbt run --select slow", "dbt test"]
    """)
    proc = project.popen("run", "slow", "--json")
    run_id = project.wait_for_step(2)
    time.sleep(2)  # let dbt start the slow query
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    run = json.loads(out)
    assert run["id"] == run_id and run["status"] == "cancelled" and run["status_code"] == 30
    assert [s["status"] for s in run["steps"]] == ["success", "cancelled", "skipped"]
    time.sleep(0.5)
    assert not dockyard_processes(str(project.config))


def test_killed_run_leaves_a_consistent_record(project):
    project.write("models/slow.sql", SLOW_MODEL)
    project.add_job("""\
        - name: slow
          environment: dev
          commands: ["dbt seed", "dbt run --select slow", "dbt test"]
    """)
    proc = project.popen("run", "slow")
    run_id = project.wait_for_step(2)
    time.sleep(1)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while dockyard_processes(str(project.config)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not dockyard_processes(str(project.config)), "an orphaned dbt process survived"
    with project.store() as store:  # before anyone looks, the record is truthful so far
        raw = store.runs.get_run(run_id)
        assert raw.status.value == "running"
        assert [s.status.value for s in raw.steps] == ["success", "running", "queued"]
        assert {n.name for n in raw.nodes if n.step_index == 1} >= {"raw_orders", "raw_customers"}
    run = json.loads(project.cli("show", str(run_id), "--json", check=0).stdout)
    assert run["status"] == "error" and run["reason"] == "worker_lost"
    assert [s["status"] for s in run["steps"]] == ["success", "error", "skipped"]
    assert run["finished_at"]
