"""Fixtures for the run store: every ``store`` test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``DOCKYARD_TEST_PG_URL`` (default: the local server, trust auth).
A fresh database is created per test session and dropped afterwards. If the server is
unreachable the PostgreSQL tests fail; set ``DOCKYARD_SKIP_PG=1`` to skip them instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dockyard.store import Store
from dockyard.store.tables import metadata

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


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
