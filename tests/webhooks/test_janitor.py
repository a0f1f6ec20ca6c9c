"""PR schemas in the warehouse (real dbt on DuckDB): a closed pull request's webhook drops its
schema; the scheduler's janitor duty drops an orphan (a schema no build recorded), keeps a
recent one, runs off the tick thread and waits while a CI-environment run is active."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pytest
from tests.webhooks.conftest import pull_request

from dockyard import clock
from dockyard.domain import RunStatus
from dockyard.server.duties import SweepPrSchemas, Tick, TickReport

pytestmark = pytest.mark.slow


def _ci_db() -> Path:
    return Path(os.environ["SHOP_DUCKDB_DIR"]) / "shop_ci.duckdb"


def _make_schemas(*names: str) -> None:
    with duckdb.connect(str(_ci_db())) as con:
        for name in names:
            con.execute(f"create schema if not exists {name}")
            con.execute(f"create or replace table {name}.orders as select 1 as id")


def _schemas() -> set[str]:
    with duckdb.connect(str(_ci_db()), read_only=True) as con:
        return {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}


def test_closing_a_pr_drops_its_schema(app, send):
    schema = app.ci.pr_schema("ci", 8)
    _make_schemas(schema, schema + "_staging", "ci_pr_9", "analytics")  # a custom-schema variant too
    app.store.pr_schemas.built("ci", 8, schema, "e" * 40)
    opened = send.github("pull_request", pull_request(8, sha="e" * 40)).json()["data"]["runs"]
    closed = send.github("pull_request", pull_request(8, action="closed", merged=True))
    assert closed.status_code == 200, closed.text
    data = closed.json()["data"]
    assert data["action"] == "merged" and data["cancelled"] == opened  # its queued build is not run
    assert sorted(data["dropped"]) == sorted([schema, schema + "_staging"])
    left = _schemas()
    assert schema not in left and schema + "_staging" not in left
    assert {"ci_pr_9", "analytics"} <= left  # another PR's schema and the rest are untouched
    assert app.store.pr_schemas.get("ci", 8).state == "dropped"


def test_the_janitor_duty_drops_an_orphan_off_the_tick_thread(app, caplog):
    caplog.set_level("INFO")
    recent = app.ci.pr_schema("ci", 31)
    _make_schemas("ci_pr_30", recent)  # 30: no build recorded it (a crash); 31: built just now
    app.store.pr_schemas.built("ci", 31, recent, "f" * 40)
    duty = SweepPrSchemas(app)
    tick = Tick(clock.now(), TickReport(), app.job_ids())
    duty.run(tick)
    assert duty._thread is None  # not due yet: the first sweep comes EVERY_S after start
    duty._next = 0.0
    run_id = app.triggers.trigger("CI", {"github_pull_request_id": 31})
    app.store.queue.claim("w", "h")
    app.store.runs.transition_run(run_id, "running", started_at=clock.now())
    duty.run(tick)
    assert duty._thread is None  # a CI run is writing to the warehouse: later
    app.store.leases.finish_run(run_id, RunStatus.SUCCESS, None)  # as its worker does at the end
    started = time.monotonic()
    duty.run(tick)
    assert time.monotonic() - started < 0.5  # the tick only starts the sweep
    duty._thread.join(timeout=120)
    assert duty.dropped == ["ci_pr_30"]
    left = _schemas()
    assert "ci_pr_30" not in left and recent in left
    assert "ci janitor dropped 1 PR schema(s): ci_pr_30" in caplog.text
    duty.run(tick)
    assert not duty._thread.is_alive() and duty._next > time.monotonic() + 60  # next sweep minutes away
