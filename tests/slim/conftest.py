"""Slim CI fixtures: a small dbt project on DuckDB with environments prod and ci, built once in
prod per module (the base state every test compares against), and helpers to change the
project for one test and put it back."""

from __future__ import annotations

import contextlib
import shutil
import textwrap
from pathlib import Path

import duckdb
import pytest

from dockyard.app import App

PROJECT = {
    "dbt_project.yml": """
        name: slimshop
        version: "1.0.0"
        config-version: 2
        profile: slimshop
        models:
          slimshop:
            staging:
              +materialized: view
            marts:
              +materialized: table
        """,
    "profiles.yml": """
        slimshop:
          target: prod
          outputs:
            prod:
              type: duckdb
              path: "{{ env_var('SLIM_DB') }}"
              schema: prod
              threads: 2
            ci:
              type: duckdb
              path: "{{ env_var('SLIM_DB') }}"
              schema: ci
              threads: 2
        """,
    "seeds/raw_orders.csv": "id,customer_id,amount\n1,1,10\n2,1,20\n3,2,5\n4,3,7\n",
    "models/staging/_sources.yml": """
        version: 2
        sources:
          - name: raw
            # follows the target: under the CI target this renders to another schema
            database: "{{ target.database }}"
            schema: "{{ target.schema }}"
            tables:
              - name: raw_orders
        """,
    # the source is the seed's table (a full build loads the seed first)
    "models/staging/stg_orders.sql": (
        "-- depends_on: {{ ref('raw_orders') }}\n"
        "select id, customer_id, amount from {{ source('raw', 'raw_orders') }}\n"
    ),
    "models/staging/stg_customers.sql": (
        "-- depends_on: {{ ref('raw_orders') }}\nselect distinct customer_id from {{ source('raw', 'raw_orders') }}\n"
    ),
    "models/marts/fct_orders.sql": (
        "select o.id, o.customer_id, {{ cents('o.amount') }} as amount\nfrom {{ ref('stg_orders') }} o\n"
    ),
    "models/marts/customer_totals.sql": (
        "select customer_id, sum(amount) as total from {{ ref('fct_orders') }} group by 1\n"
    ),
    "models/marts/dim_customers.sql": "select customer_id from {{ ref('stg_customers') }}\n",
    "models/marts/_marts.yml": """
        version: 2
        models:
          - name: fct_orders
            columns:
              - name: id
                data_tests: [unique, not_null]
        exposures:
          - name: weekly_report
            type: dashboard
            owner: {email: data@example.com}
            depends_on: [ref('customer_totals')]
        """,
    "macros/cents.sql": "{% macro cents(col) %}({{ col }} * 100){% endmacro %}\n",
    "dockyard.yml": """
        runner:
          inherit_env: [SLIM_DB]
          mode: subprocess
        environments:
          prod: {target: prod}
          ci: {target: ci, pr_schema_prefix: dbt_ci}
          empty: {target: prod, schema: nothing_here}
        ci:
          environment: ci
          base: prod
        jobs:
          - name: Prod
            environment: prod
            commands: ["dbt seed", "dbt build"]
          - name: CI
            environment: ci
            commands: ["dbt build --select state:modified+"]
            triggers: {github_webhook: true}
        """,
}


def write_project(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


class Shop:
    """The project, its app, its warehouse."""

    def __init__(self, root: Path, db: Path):
        self.root, self.db = root, db
        self.app = App.open(root / "dockyard.yml", f"sqlite:///{root / 'store.db'}")

    def reopen(self) -> App:
        self.app.close()
        self.app = App.open(self.root / "dockyard.yml", f"sqlite:///{self.root / 'store.db'}")
        return self.app

    @contextlib.contextmanager
    def changed(self, files: dict[str, str | None]):
        """Change (None: delete) project files for the block, then put them back."""
        saved = {rel: (self.root / rel).read_text() if (self.root / rel).exists() else None for rel in files}
        try:
            for rel, text in files.items():
                if text is None:
                    (self.root / rel).unlink()
                else:
                    write_project(self.root, {rel: text})
            yield
        finally:
            for rel, text in saved.items():
                if text is None:
                    (self.root / rel).unlink(missing_ok=True)
                else:
                    (self.root / rel).write_text(text)

    def tables(self, schema: str) -> set[str]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            rows = con.execute("select table_name from information_schema.tables where table_schema = ?", [schema])
            return {r[0] for r in rows.fetchall()}

    def schemas(self) -> set[str]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}

    def query(self, sql: str):
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql).fetchall()


def make_shop(tmp: Path, monkeypatch, extra: dict[str, str] | None = None) -> Shop:
    root = tmp / "project"
    write_project(root, {**PROJECT, **(extra or {})})
    db = tmp / "warehouse.duckdb"
    monkeypatch.setenv("SLIM_DB", str(db))
    shop = Shop(root, db)
    run = shop.app.run_job("Prod")
    assert run.status.value == "success", shop.app.runs.logs(run.id)
    return shop


@pytest.fixture(scope="module")
def module_monkeypatch():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def slimshop(tmp_path_factory, module_monkeypatch):
    """The project built once in prod (the base of every CI build of the module)."""
    tmp = tmp_path_factory.mktemp("slim")
    shop = make_shop(tmp, module_monkeypatch)
    yield shop
    shop.app.close()
    shutil.rmtree(tmp, ignore_errors=True)
