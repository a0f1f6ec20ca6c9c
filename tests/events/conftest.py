"""Fixtures of the event tests: a migrated store on SQLite and on PostgreSQL (the store
tests' fixture), and real dockyard processes (the fault tests')."""

from tests.faults.conftest import cluster, cluster_factory  # noqa: F401 - real dockyard processes
from tests.store.conftest import pg_url, store  # noqa: F401 - a migrated, empty store per backend
