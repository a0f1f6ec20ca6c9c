"""One real run of the shop example on DuckDB (shared by the module): its history written to
the warehouse by the duty's code path (idempotent), the documented ``model_run_stats`` built
by dbt over it, ``/metrics`` and the cost report over real node results."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dockyard.api.app import create_app
from dockyard.app import App
from dockyard.app.delivery import deliver_run_events
from dockyard.app.history import write_pending

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
JOB = """\
  - name: "Build and docs"
    environment: dev
    commands: ["dbt seed", "dbt run", "dbt test", "dbt docs generate"]
metrics:
  warehouse_history: {enabled: true, environments: [dev]}
"""
EXECUTED = 4 + 7 + 24  # seeds, models, tests (docs generate's compiles are not executions)


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("metrics-shop")
    dest = base / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    (base / "db").mkdir()
    with (dest / "dockyard.yml").open("a") as fh:
        fh.write(JOB)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOP_DUCKDB_DIR", str(base / "db"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        mp.delenv("DOCKYARD_STORE_URL", raising=False)
        app = App.open(dest / "dockyard.yml")
        app.sync()
        run = app.run_job("Build and docs")
        assert run.status.value == "success"
        deliver_run_events(app, run.id)  # (the foreground run did; again changes nothing)
        yield app, run, base / "db" / "shop_dev.duckdb"
        app.close()


def test_history_is_written_once_and_model_run_stats_builds_over_it(shop_run):
    app, run, db = shop_run
    [queued] = app.store.metric_state.history_writes()
    assert queued["run_id"] == run.id and queued["state"] == "pending"
    assert write_pending(app, "test") == [(run.id, "done")]
    app.store.metric_state.queue_history(run.id, "dev")  # a second delivery: no second write
    assert write_pending(app, "test") == []
    from dockyard.app.history import write_run

    assert write_run(app, run.id) == EXECUTED  # written again by hand: replaced, not doubled
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql(
            "select resource_type, node_status, count(*) from dev.dockyard_run_results "
            f"where run_id = {run.id} group by all order by all"
        ).fetchall()
        assert sum(n for _, _, n in rows) == EXECUTED
        assert {r[0] for r in rows} == {"seed", "model", "test"}
        assert con.sql(
            'select distinct job, environment, "trigger", run_status from dev.dockyard_run_results'
        ).fetchall() == [("Build and docs", "dev", "manual", "success")]
    # the documented model, built by dbt over the table
    docs = (ROOT / "docs" / "metrics.md").read_text()
    for block in re.findall(r"```(?:yaml|sql)\n(.*?)```", docs, re.S):
        first = block.splitlines()[0]
        if m := re.match(r"(?:#|--) (models/dockyard/\S+)", first):
            target = app.loaded.base_dir / m.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block)
    dbt = Path(sys.executable).with_name("dbt")
    env = dict(os.environ, SHOP_DUCKDB_DIR=str(db.parent), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    proc = subprocess.run(
        [
            str(dbt),
            "run",
            "--select",
            "model_run_stats",
            "--target",
            "dev",
            "--profiles-dir",
            ".",
            "--project-dir",
            ".",
        ],
        cwd=app.loaded.base_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    with duckdb.connect(str(db), read_only=True) as con:
        stats = con.sql(
            "select unique_id, executions, successes, avg_execution_time from dev.model_run_stats"
        ).fetchall()
    assert len(stats) == 7 and all(n == 1 and ok == 1 and t > 0 for _, n, ok, t in stats)


def test_metrics_and_costs_of_a_real_run(shop_run):
    app, run, _ = shop_run
    with TestClient(create_app(app)) as c:
        text = c.get("/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    runs = {
        tuple(sorted(s.labels.items())): s.value for s in fams["dockyard_runs"].samples if s.name.endswith("_total")
    }
    assert runs[(("environment", "dev"), ("job", "Build and docs"), ("status", "success"))] == 1
    counts = [s for s in fams["dockyard_model_duration_seconds"].samples if s.name.endswith("_count")]
    assert len(counts) == 7 and all(s.value == 1 for s in counts)  # run once each: docs generate's compiles left out
    [warned] = [t for t in app.metrics.tests(environment="dev") if t["warn"]]
    assert warned["executions"] == 1
    report = app.costs.report("dev", days=1)
    assert report["materializations_from"] == run.id
    by_id = {m["unique_id"]: m for m in report["models"]}
    assert by_id["model.shop.fct_orders"]["materialized"] == "table"
    assert by_id["model.shop.stg_orders"]["materialized"] == "view"
    assert len([m for m in report["models"] if m["resource_type"] == "model"]) == 7
