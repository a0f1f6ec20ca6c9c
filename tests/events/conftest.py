"""Fixtures of the event tests: a migrated store on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from tests.faults.conftest import cluster, cluster_factory  # noqa: F401 - real dockyard processes

from dockyard.store import Store
from dockyard.store.tables import metadata

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def events_pg_url(pg_database_factory: Callable[[], str]) -> str:
    url = pg_database_factory()
    with Store(url) as store:
        store.migrate()
    return url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        with Store(f"sqlite:///{tmp_path / 'dockyard.db'}") as s:
            s.migrate()
            yield s
        return
    with Store(request.getfixturevalue("events_pg_url")) as s:
        try:
            yield s
        finally:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            with s.engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
