"""Metrics fixtures: an App over a small dockyard.yml (no dbt needed) on SQLite, and runs
recorded through the store's API as a worker records them, at chosen times."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.store.conftest import pg_url, store  # noqa: F401 - a migrated, empty store per backend

from dockyard.app import App
from dockyard.domain import NodeResult, RunStatus

T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
CONFIG = """\
version: 1
environments:
  prod: {target: prod}
  dev: {target: dev}
jobs:
  - name: nightly
    environment: prod
    commands: ["dbt build"]
  - name: hourly
    environment: dev
    commands: ["dbt run"]
notifications:
  - name: ops
    type: slack
    webhook_url: "http://127.0.0.1:9/hooks/ops"
alerts:
  allow_hosts: ["127.0.0.1"]
"""


def write_config(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dockyard.yml"
    path.write_text(CONFIG + textwrap.dedent(extra))
    return path


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    made: list[App] = []

    def make(extra: str = "", name: str = "site") -> App:
        app = App.open(write_config(tmp_path / name, extra))
        app.sync()
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture
def app(make_app) -> App:
    return make_app()


def record_run(
    db,
    job: str,
    environment: str,
    nodes: dict[str, float | tuple],
    *,
    at: datetime = T0,
    status: RunStatus = RunStatus.SUCCESS,
    wait_s: float = 5.0,
    duration_s: float | None = None,
    step: int = 1,
) -> int:
    """A final run of ``job`` that finished at ``at``: ``nodes`` maps unique ids to seconds,
    or to ``(seconds, status[, rows, adapter_response])``."""
    run_id = db.runs.create_run(None, job, environment, ["dbt build"])
    db.runs.transition_run(run_id, RunStatus.STARTING, worker_id="test:1")
    db.runs.transition_run(run_id, RunStatus.RUNNING)
    results = []
    for uid, spec in nodes.items():
        seconds, node_status, rows, response = (
            (*spec, None, None)[:4] if isinstance(spec, tuple) else (spec, None, None, None)
        )
        kind = uid.split(".")[0]
        results.append(
            NodeResult(
                uid,
                name=uid.rsplit(".", 1)[-1],
                resource_type=kind,
                status=node_status or ("pass" if kind == "test" else "success"),
                execution_time_s=seconds,
                rows_affected=rows,
                adapter_response=response,
            )
        )
    if results:
        db.runs.upsert_nodes(run_id, step, results)
    db.leases.finish_run(run_id, status, None if status == RunStatus.SUCCESS else "step_failed")
    total = (
        duration_s
        if duration_s is not None
        else sum((s[0] if isinstance(s, tuple) else s) or 0 for s in nodes.values())
    )
    started = at - timedelta(seconds=total)
    db.runs.set_run_fields(
        run_id,
        created_at=started - timedelta(seconds=wait_s),
        queued_at=started - timedelta(seconds=wait_s),
        started_at=started,
        finished_at=at,
    )
    return run_id
