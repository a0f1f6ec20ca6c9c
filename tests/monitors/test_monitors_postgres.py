"""A schema monitor on PostgreSQL (127.0.0.1:5432, database ``test``, a schema of this test's
own, dropped after): columns added and changed type are found through dbt-postgres (the
warehouse's information_schema); a varchar that becomes text is no change."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from dockyard.app import App

from .conftest import write

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PROFILE = """
pgmon:
  target: prod
  outputs:
    prod:
      type: postgres
      host: 127.0.0.1
      port: 5432
      user: postgres
      password: ""
      dbname: test
      schema: {schema}
      threads: 1
"""


def pg(*statements: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True, connect_timeout=5) as con:
        for statement in statements:
            con.execute(statement)


@pytest.fixture
def pg_app(tmp_path):
    schema = f"mon_{uuid.uuid4().hex[:8]}"
    write(
        tmp_path,
        {
            "dbt_project.yml": "name: pgmon\nversion: '1.0.0'\nconfig-version: 2\nprofile: pgmon\n",
            "profiles.yml": PROFILE.format(schema=schema),
            "models/.keep": "",
            "dockyard.yml": f"""
                runner: {{mode: subprocess}}
                environments:
                  prod: {{target: prod}}
                monitors:
                  - {{name: things_schema, type: schema, table: {schema}.things}}
                """,
        },
    )
    pg(f'create schema "{schema}"', f'create table "{schema}".things (id integer, n integer, name varchar(20))')
    app = App.open(tmp_path / "dockyard.yml", f"sqlite:///{tmp_path / 'store.db'}")
    yield app, schema
    app.close()
    pg(f'drop schema if exists "{schema}" cascade')


def test_schema_changes_on_postgres(pg_app):
    app, schema = pg_app
    [first] = app.monitors.check()
    assert first.status == "ok" and first.message == "3 columns (first snapshot)", first.message
    pg(
        f'alter table "{schema}".things alter column n type bigint',
        f'alter table "{schema}".things alter column name type text',
        f'alter table "{schema}".things add column extra boolean',
    )
    [second] = app.monitors.check()
    assert second.status == "alert"
    assert second.message == "n changed type (integer -> bigint); extra added", second.message
    changes = app.monitors.history("things_schema", 1)[0]["detail"]["changes"]
    assert [c["column"] for c in changes] == ["n", "extra"]  # name: varchar -> text is no change
