"""Monitor fixtures: a small dbt project on DuckDB (a raw table the tests change directly with
duckdb, a model built from it by the job ``build``), built once per module, with monitors of
every type and a Slack channel on a loopback receiver for monitor alerts."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from tests.channels.receiver import Receiver

from dockyard.app import App

SLACK_SECRET = "T0MONITOR/B0MONITOR/m0n1t0rS3cr3t"

PROJECT = {
    "dbt_project.yml": """
        name: monshop
        version: "1.0.0"
        config-version: 2
        profile: monshop
        models:
          monshop:
            +materialized: table
        """,
    "profiles.yml": """
        monshop:
          target: prod
          outputs:
            prod:
              type: duckdb
              path: "{{ env_var('MON_DB') }}"
              schema: main
              threads: 1
        """,
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: orders
        """,
    "models/orders.sql": "select id, amount, loaded_at from {{ source('raw', 'orders') }}\n",
    "models/big_orders.sql": "select id from {{ ref('orders') }} where amount > 100\n",
}

CONFIG = """
runner:
  inherit_env: [MON_DB]
  mode: subprocess
environments:
  prod: {target: prod}
jobs:
  - name: build
    environment: prod
    commands: ["dbt run"]
alerts: {allow_hosts: ["127.0.0.0/8"], timeout_seconds: 2}
notifications:
  - {name: ops, type: slack, webhook_url: "env:MON_SLACK_URL", kinds: [monitor]}
monitors:
"""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


class Shop:
    """The project, its warehouse file, and its app."""

    def __init__(self, root: Path, db: Path, monitors: str):
        self.root, self.db = root, db
        write(root, PROJECT)
        (root / "dockyard.yml").write_text(CONFIG + textwrap.indent(textwrap.dedent(monitors), "  "))
        self.app = App.open(root / "dockyard.yml", f"sqlite:///{root / 'store.db'}")

    def sql(self, *statements: str) -> list:
        """Run statements on the warehouse (closed again: dbt needs the file)."""
        out = []
        with duckdb.connect(str(self.db)) as con:
            for statement in statements:
                out = con.execute(statement).fetchall()
        return out

    def load(self, rows: int, *, start: int = 1, amount: int = 10, at: datetime | None = None) -> None:
        at = at or datetime.now(UTC).replace(tzinfo=None)
        self.sql(
            f"insert into raw.orders (id, amount, loaded_at) select range + {start}, {amount},"
            f" timestamp '{at.isoformat(sep=' ')}'"
            f" from range({rows})"
        )


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as r:
        yield r


def make_shop(tmp_path_factory, monkeypatch_module, receiver, monitors: str) -> Shop:
    root = tmp_path_factory.mktemp("monshop")
    db = root / "warehouse.duckdb"
    monkeypatch_module.setenv("MON_DB", str(db))
    monkeypatch_module.setenv("MON_SLACK_URL", receiver.url(f"/services/{SLACK_SECRET}"))
    monkeypatch_module.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch_module.delenv("DOCKYARD_STORE_URL", raising=False)
    shop = Shop(root, db, monitors)
    shop.sql("create schema raw", "create table raw.orders (id integer, amount integer, loaded_at timestamp)")
    shop.load(20)
    return shop


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp
