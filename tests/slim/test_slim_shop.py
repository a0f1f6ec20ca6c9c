"""The shop example's CI job: a pull request after a production run builds what it changed in
its PR schema of shop_ci.duckdb and defers the rest to the attached production file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from dockyard.app import App

pytestmark = pytest.mark.slow


def test_the_shop_ci_job_defers_to_production(shop):
    app = App.open(shop / "dockyard.yml")
    try:
        prod = app.run_job("Daily Production Run")
        assert prod.status.value == "success", app.runs.logs(prod.id, tail=40)
        fct = shop / "models/marts/fct_orders.sql"
        fct.write_text(fct.read_text().rstrip().rstrip(";") + "\n")  # a body change dbt sees
        fct.write_text(fct.read_text().replace("select", "select 1 as pr_flag,", 1))
        result = app.ci.build(5)
        assert result.ok, app.runs.logs(result.run.id, tail=60)
        assert result.schema == "ci_pr_5"
        reasons = {s["unique_id"]: s["reason"] for s in result.selected}
        assert reasons["model.shop.fct_orders"] == "body changed"
        assert all(r == "body changed" or r.startswith("downstream of ") for r in reasons.values()), reasons
        assert not any(uid.startswith("model.shop.stg_") for uid in reasons)  # upstream: deferred
        step = app.runs.artifact_root(result.run.id) / "step-2" / "run_results.json"
        compiled = next(
            r["compiled_code"]
            for r in json.loads(step.read_text())["results"]
            if r["unique_id"] == "model.shop.fct_orders"
        )
        assert '"shop_prod"."analytics"' in compiled
        db = Path(os.environ["SHOP_DUCKDB_DIR"]) / "shop_ci.duckdb"
        with duckdb.connect(str(db), read_only=True) as con:
            tables = {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = 'ci_pr_5'"
                ).fetchall()
            }
        assert "fct_orders" in tables and "stg_orders" not in tables
        assert app.ci.cleanup(5) == ["ci_pr_5"]
    finally:
        app.close()
