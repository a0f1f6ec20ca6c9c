"""Slim CI on PostgreSQL (127.0.0.1:5432, database ``test``): schemas of this test's own,
dropped at the end."""

from __future__ import annotations

import json
import shutil
import uuid

import psycopg2
import pytest

from dockyard.app import App

from .conftest import PROJECT, write_project

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PROFILE = """
slimshop:
  target: prod
  outputs:
    prod: &pg
      type: postgres
      host: 127.0.0.1
      port: 5432
      user: postgres
      password: ""
      dbname: test
      schema: {prefix}_prod
      threads: 2
    ci:
      <<: *pg
      schema: {prefix}_ci
"""


def schemas(prefix: str) -> set[str]:
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as con, con.cursor() as cur:
        cur.execute("select schema_name from information_schema.schemata where schema_name like %s", [prefix + "%"])
        return {r[0] for r in cur.fetchall()}


def columns(schema: str, table: str) -> list[str]:
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as con, con.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
            " order by ordinal_position",
            [schema, table],
        )
        return [r[0] for r in cur.fetchall()]


@pytest.fixture
def pg_shop(tmp_path):
    prefix = f"slim_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "project"
    config = PROJECT["dockyard.yml"].replace("inherit_env: [SLIM_DB]", "inherit_env: []")
    config = config.replace("pr_schema_prefix: dbt_ci", f"pr_schema_prefix: {prefix}_ci")
    write_project(root, {**PROJECT, "dockyard.yml": config, "profiles.yml": PROFILE.format(prefix=prefix)})
    app = App.open(root / "dockyard.yml", f"sqlite:///{tmp_path / 'store.db'}")
    yield app, prefix
    app.close()
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as con, con.cursor() as cur:
        for name in schemas(prefix):
            cur.execute(f'drop schema if exists "{name}" cascade')
    shutil.rmtree(root, ignore_errors=True)


def test_one_model_changed_on_postgres_builds_in_the_pr_schema_and_cleanup_drops_it(pg_shop):
    app, prefix = pg_shop
    prod = app.run_job("Prod")
    assert prod.status.value == "success", app.runs.logs(prod.id)
    fct = app.project.project_dir / "models/marts/fct_orders.sql"
    fct.write_text("select o.id, o.customer_id, o.amount, 1 as x\nfrom {{ ref('stg_orders') }} o\n")
    result = app.ci.build(31)
    assert result.ok, app.runs.logs(result.run.id)
    pr = f"{prefix}_ci_pr_31"
    assert result.schema == pr
    assert {s["unique_id"] for s in result.selected if s["unique_id"].startswith("model.")} == {
        "model.slimshop.fct_orders",
        "model.slimshop.customer_totals",
    }
    assert columns(pr, "fct_orders") == ["id", "customer_id", "amount", "x"]
    assert columns(pr, "stg_orders") == []  # upstream deferred, not built
    assert "x" not in columns(f"{prefix}_prod", "fct_orders")
    results = json.loads((app.runs.artifact_root(result.run.id) / "step-1" / "run_results.json").read_text())
    compiled = next(r["compiled_code"] for r in results["results"] if r["unique_id"] == "model.slimshop.fct_orders")
    assert f'"test"."{prefix}_prod"."stg_orders"' in compiled
    assert app.ci.cleanup(31) == [pr]
    assert pr not in schemas(prefix) and f"{prefix}_prod" in schemas(prefix)
