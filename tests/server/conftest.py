"""Server fixtures: an App over a copy of the shop project with extra scheduled jobs, on
SQLite and PostgreSQL stores, and a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.faults.conftest import cluster, cluster_factory  # noqa: F401 - real server processes

from dockyard.app import App

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

JOBS = """
  - name: minutely
    environment: dev
    schedule: {cron: "* * * * *", timezone: UTC}
    commands: ["dbt parse"]
    allow_overlap: true
    catchup: all
  - name: nightly-ny
    environment: dev
    schedule: {cron: "30 2 * * *", timezone: America/New_York}
    commands: ["dbt parse"]
    allow_overlap: true
  - name: serial
    environment: dev
    schedule: {cron: "*/5 * * * *", timezone: UTC}
    commands: ["dbt parse"]
  - name: upstream-a
    environment: dev
    commands: ["dbt parse"]
  - name: upstream-b
    environment: dev
    commands: ["dbt parse"]
  - name: after-any
    environment: dev
    commands: ["dbt parse"]
    allow_overlap: true
    triggers: {after: {jobs: [upstream-a], when: any}}
  - name: after-all
    environment: dev
    commands: ["dbt parse"]
    allow_overlap: true
    triggers: {after: {jobs: [upstream-a, upstream-b], when: all, status: [success, error]}}
  - name: flaky
    environment: dev
    commands: ["dbt seed", "dbt run"]
    retries: {max_attempts: 3, backoff_seconds: 0, on: transient}
"""


class Clock:
    def __init__(self, start: datetime):
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> datetime:
        self.t += timedelta(**kw)
        return self.t


@pytest.fixture
def clock_at():
    return lambda *args: Clock(datetime(*args, tzinfo=UTC))


def make_app(shop: Path, store_url: str | None) -> App:
    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + JOBS)
    app = App.open(config, store_url)
    app.sync()
    return app


@pytest.fixture(params=BACKENDS)
def server_app(request, shop: Path):
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database_factory")()
    app = make_app(shop, url)
    yield app
    app.close()
