"""Fixtures for the run store: every ``store`` test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``DOCKYARD_TEST_PG_URL`` (default: the local server, trust auth).
A fresh database is created per test session and dropped afterwards. If the server is
unreachable the PostgreSQL tests fail; set ``DOCKYARD_SKIP_PG=1`` to skip them instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dockyard.store import Store
from dockyard.store.tables import metadata

PG_ADMIN_URL = os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _admin() -> psycopg.Connection:
    if os.environ.get("DOCKYARD_SKIP_PG") == "1":
        pytest.skip("DOCKYARD_SKIP_PG=1")
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is unreachable at {PG_ADMIN_URL} ({exc}); start it, point "
                    "DOCKYARD_TEST_PG_URL at a server, or set DOCKYARD_SKIP_PG=1", pytrace=False)


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[[], str]]:
    """Creates throw-away databases (dropped at the end of the session); returns their URLs."""
    created: list[str] = []

    def create() -> str:
        name = f"dockyard_test_{uuid.uuid4().hex[:12]}"
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield create
    if created:
        with _admin() as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url(pg_database_factory: Callable[[], str]) -> str:
    """One migrated database shared by the session; ``store`` empties it after each test."""
    url = pg_database_factory()
    with Store(url) as store:
        store.migrate()
    return url


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL to a database that has never been migrated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'dockyard.db'}"
    return request.getfixturevalue("pg_database_factory")()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dockyard.db'}"
        with Store(url) as s:
            s.migrate()
            yield s
        return
    with Store(request.getfixturevalue("pg_url")) as s:
        s.migrate()
        try:
            yield s
        finally:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            with s.engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
