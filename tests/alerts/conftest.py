"""Alert test fixtures: loopback receivers speaking the channels' HTTP APIs (the channel tests'
:class:`~tests.channels.receiver.Receiver`), an App over a small dockyard.yml whose channels
point at them, and runs recorded in the store as a worker records them (real final events in
the outbox, delivered to the alerts consumer as a foreground run or the scheduler delivers).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.channels.receiver import Receiver

from dockyard.app import App
from dockyard.app.delivery import deliver_run_events
from dockyard.domain import NodeResult, RunStatus, StepStatus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SLACK_SECRET = "T0ALERTS/B0ALERTS/s3cr3tW3bh00kT0ken"  # the part of a Slack URL that is the secret
PD_KEY = "pd-routing-key-5ecr3t-0123456789"


@pytest.fixture
def slack() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def other() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def write_config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "dbt_project.yml").exists():
        (folder / "dbt_project.yml").write_text("name: stub\nversion: '1.0'\nconfig-version: 2\nprofile: stub\n")
    config = folder / "dockyard.yml"
    config.write_text("store: {url: 'sqlite:///state.db'}\n" + textwrap.dedent(body))
    return config


def open_app(config: Path) -> App:
    app = App.open(config)
    app.sync()
    return app


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``make_app(yaml)``: an App over ``yaml`` (a stub dbt project; runs are recorded, not run)."""
    opened: list[App] = []

    def make(body: str, folder: str = "proj") -> App:
        app = open_app(write_config(tmp_path / folder, body))
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.close()


@pytest.fixture
def mini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of tests/fixtures/mini (DuckDB)."""
    dest = tmp_path / "mini"
    shutil.copytree(FIXTURES / "mini", dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    return dest


def record_run(
    app: App,
    job: str,
    status: RunStatus = RunStatus.ERROR,
    *,
    reason: str | None = None,
    failed: tuple[tuple[str, str], ...] = (("fct_orders", 'Binder Error: column "amount" not found'),),
    worker: bool = False,
    attempt: int = 1,
    retry_of: int | None = None,
    warnings: bool = False,
) -> int:
    """A run of ``job`` recorded as the executor records it (a ``dbt run`` step, its nodes),
    made final by ``app.execution.finish`` (the final event written with it)."""
    record, config = app.job(job)
    store = app.store
    run_id = store.runs.create_run(
        record.id, record.name, config.environment, ["dbt run"], trigger="manual", attempt=attempt, retry_of=retry_of
    )
    store.runs.transition_run(run_id, RunStatus.STARTING, worker_id="test:1:worker:a" if worker else "test:1")
    if worker:
        store.runs.set_run_fields(run_id, claimed_at=datetime.now(UTC))
    start = datetime.now(UTC) - timedelta(seconds=42)
    store.runs.transition_run(run_id, RunStatus.RUNNING, started_at=start)
    store.runs.start_step(run_id, 1, start)
    ok = status == RunStatus.SUCCESS
    nodes = [NodeResult(unique_id="model.p.stg_ok", name="stg_ok", resource_type="model", status="success")]
    if not ok:
        nodes += [
            NodeResult(unique_id=f"model.p.{name}", name=name, resource_type="model", status="error", message=msg)
            for name, msg in failed
        ]
    store.runs.upsert_nodes(run_id, 1, nodes)
    store.runs.finish_step(run_id, 1, StepStatus.SUCCESS if ok else StepStatus.ERROR, 0 if ok else 1, datetime.now(UTC))
    app.execution.finish(run_id, status, reason if reason or ok else "step_failed", warnings)
    return run_id


def foreground(app: App, run_id: int, wait_s: float = 10.0) -> None:
    """What a foreground ``dockyard run`` does after its run: deliver its events, send its alerts."""
    deliver_run_events(app, run_id)
    app.alerts.flush_run(run_id, wait_s=wait_s)
