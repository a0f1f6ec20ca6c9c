"""Shared fixtures: throw-away PostgreSQL databases, copies of the example project."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pg_admin() -> psycopg.Connection:
    if os.environ.get("DOCKYARD_SKIP_PG") == "1":
        pytest.skip("DOCKYARD_SKIP_PG=1")
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_ADMIN_URL} ({exc}); start it, point "
            "DOCKYARD_TEST_PG_URL at a server, or set DOCKYARD_SKIP_PG=1",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[[], str]]:
    """Creates throw-away databases (dropped at the end of the session); returns their URLs."""
    created: list[str] = []

    def create() -> str:
        name = f"dockyard_test_{uuid.uuid4().hex[:12]}"
        with pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield create
    if created:
        with pg_admin() as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of examples/shop whose DuckDB files and store live in tmp_path."""
    dest = tmp_path / "shop"
    shutil.copytree(
        ROOT / "examples" / "shop",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml"),
    )
    monkeypatch.setenv("SHOP_DUCKDB_DIR", str(tmp_path / "db"))
    (tmp_path / "db").mkdir()
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return dest
