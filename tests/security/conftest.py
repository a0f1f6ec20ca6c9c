"""A copy of examples/shop with canary secrets planted where a dbt project really keeps them.

Three canaries, fresh for every test:

* ``api_token``: a configured secret, ``secrets: {SHOP_API_TOKEN: "env:CANARY_SRC_1"}`` on the
  ``prod`` environment, its value exported as ``$CANARY_SRC_1`` where the CLI runs. A plain
  name (not ``DBT_ENV_SECRET_``): dbt does not scrub it, dockyard must. Models select it in a
  string literal, ``log()`` it, and one uses it as a column name so that dbt's error message
  holds it.
* ``warehouse_password``: ``$DBT_ENV_SECRET_WAREHOUSE_PW``, passed through to dbt like every
  ``DBT_*`` variable and used in the profile (a DuckDB setting, ``http_proxy_password``).
  It holds ``/ @ space + = & ?`` so its URL-encoded forms differ from the raw value.
* ``proxy_user``: a configured ``file:`` secret, ``SHOP_PROXY_USER``, used in the profile
  (``http_proxy_username``, which ``dbt debug`` prints unmasked) and logged by a model;
  also with special characters.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.e2e.conftest import Project
from tests.security.canary import Canary, CanaryScanner, new_canary

# dbt's own working folder: compiled SQL, its manifest and partial-parse cache. It is not a
# sink dockyard exposes (logs, artifacts, the store and the terminal are); see the report
# in test_canary_secrets.py.
DBT_TARGETS = ".dockyard/targets"

PROD_ENV = "  prod:\n    target: prod\n    threads: 4\n"
PROD_OUTPUT = "      schema: analytics\n      threads: 4\n"

MODELS = {
    # the configured secret in a string literal, and in dbt's console output via log()
    "models/canary/canary_ok.sql": """\
        {{ log("api token: " ~ env_var('SHOP_API_TOKEN'), info=True) }}
        {{ log("proxy user: " ~ env_var('SHOP_PROXY_USER'), info=True) }}
        select '{{ env_var('SHOP_API_TOKEN') }}' as api_token, 1 as n
    """,
    # proves the profile's secrets reached DuckDB, without writing them anywhere
    "models/canary/canary_settings.sql": """\
        {{ config(materialized='table') }}
        select length(current_setting('http_proxy_password')) as password_length,
               length(current_setting('http_proxy_username')) as user_length
    """,
    # an unknown column named like the secret: dbt's error message holds the secret
    "models/canary/canary_fail.sql": """\
        select {{ env_var('SHOP_API_TOKEN') }} as x
    """,
    # a test whose compiled SQL holds the secret; it warns (one row), so the run goes on
    "tests/canary_token_present.sql": """\
        {{ config(severity='warn') }}
        select * from {{ ref('canary_ok') }} where api_token = '{{ env_var('SHOP_API_TOKEN') }}'
    """,
}

JOBS = """\
    - name: canary ok
      environment: prod
      commands: ["dbt run --select canary_ok canary_settings", "dbt test --select canary_ok",
                 "dbt docs generate --select canary_ok canary_settings"]
    - name: canary fail
      environment: prod
      commands: ["dbt run --select canary_fail"]
"""


@dataclass
class CanaryShop:
    project: Project
    api_token: Canary
    warehouse_password: Canary
    proxy_user: Canary

    @property
    def path(self) -> Path:
        return self.project.path

    @property
    def canaries(self) -> list[Canary]:
        return [self.api_token, self.warehouse_password, self.proxy_user]

    @property
    def store_url(self) -> str:
        return self.project.store_url or f"sqlite:///{self.path / '.dockyard' / 'dockyard.db'}"

    def scanner(self, canaries: Iterable[Canary] | None = None) -> CanaryScanner:
        return CanaryScanner(list(self.canaries if canaries is None else canaries))

    def cli(self, scanner: CanaryScanner, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
        """Run ``dockyard ARGS`` as a process of its own and scan its stdout and stderr."""
        proc = self.project.cli(*args, check=check)
        scanner.scan_process("dockyard " + " ".join(args), proc)
        return proc

    def scan_persisted(self, scanner: CanaryScanner) -> dict[str, int]:
        """Every file of the project folder (the state folder with the SQLite store, run logs,
        artifacts and derived profiles; dbt's ``logs/``), except dbt's target folders; then
        every row of every table of the store. Returns table -> row count."""
        scanner.scan_tree(self.path, exclude=[DBT_TARGETS], label="<project>")
        return scanner.scan_store(self.store_url)

    def duckdb_rows(self, sql: str) -> list[tuple]:
        import duckdb

        db = self.path.parent / "db" / "shop_prod.duckdb"
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute(sql).fetchall()


def plant(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str | None, mode: str = "fork"
) -> CanaryShop:
    api_token = new_canary("SHOP_API_TOKEN (secrets: env:CANARY_SRC_1)")
    warehouse_password = new_canary("DBT_ENV_SECRET_WAREHOUSE_PW (passed through)", special=True)
    proxy_user = new_canary("SHOP_PROXY_USER (secrets: file:)", special=True)

    monkeypatch.setenv("CANARY_SRC_1", api_token.value)
    monkeypatch.setenv("DBT_ENV_SECRET_WAREHOUSE_PW", warehouse_password.value)
    secret_file = tmp_path / "secrets" / "proxy_user"  # outside the project folder
    secret_file.parent.mkdir()
    secret_file.write_text(proxy_user.value + "\n")

    config = shop / "dockyard.yml"
    text = config.read_text()
    assert PROD_ENV in text and "\nrunner:\n" in text
    text = text.replace(
        PROD_ENV,
        PROD_ENV
        + textwrap.indent(
            textwrap.dedent(f"""\
        schema: analytics_canary   # makes dockyard write a derived profiles.yml
        secrets:
          SHOP_API_TOKEN: "env:CANARY_SRC_1"
          SHOP_PROXY_USER: "file:{secret_file}"
    """),
            "    ",
        ),
    )
    text = text.replace("\nrunner:\n", f"\nrunner:\n  mode: {mode}\n")
    config.write_text(text)

    profiles = shop / "profiles.yml"
    text = profiles.read_text()
    assert PROD_OUTPUT in text
    profiles.write_text(
        text.replace(
            PROD_OUTPUT,
            PROD_OUTPUT
            + textwrap.indent(
                textwrap.dedent("""\
        settings:
          http_proxy_password: "{{ env_var('DBT_ENV_SECRET_WAREHOUSE_PW') }}"
          http_proxy_username: "{{ env_var('SHOP_PROXY_USER') }}"
    """),
                "      ",
            ),
        )
    )

    project = Project(shop, store_url)
    for rel, body in MODELS.items():
        project.write(rel, body)
    project.add_job(JOBS)
    return CanaryShop(project, api_token, warehouse_password, proxy_user)


@pytest.fixture
def canary_shop(request, shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CanaryShop:
    """The shop with canaries planted; ``request.param`` (indirect) is ``(store, mode)`` with
    store ``sqlite`` or ``postgresql`` and mode the runner mode; default SQLite, fork."""
    store, mode = getattr(request, "param", ("sqlite", "fork"))
    url = request.getfixturevalue("pg_database_factory")() if store == "postgresql" else None
    return plant(shop, tmp_path, monkeypatch, url, mode)
