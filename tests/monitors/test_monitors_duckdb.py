"""Monitors on DuckDB with real dbt: volume (minimum, relative), freshness (a timestamp column,
the model's last build), schema changes, sql failures; one alert per state change, received by
a loopback Slack server, then resolved; the consumer queues a check after the job and the
RunMonitors duty runs it; the CLI and the API. One project per module: each check is one
``dbt run-operation``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dockyard.app.delivery import deliver_run_events
from dockyard.server.duties import RunMonitors, Tick, TickReport

from .conftest import SLACK_SECRET, make_shop

pytestmark = pytest.mark.slow

MONITORS = """
- {name: rows_min, type: volume, table: raw.orders, threshold: 5}
- {name: rows_rel, type: volume, table: raw.orders, threshold: "50%"}
- {name: fresh, type: freshness, table: raw.orders, timestamp_column: loaded_at, threshold: "6 hours"}
- {name: built, type: freshness, model: orders, threshold: "1 hour"}
- {name: cols, type: schema, table: raw.orders}
- {name: negative, type: sql, sql: "select id, amount from raw.orders where amount < 0"}
- {name: big_ok, type: sql, sql: "select * from {{ relation('big_orders') }} where id < 0"}
- {name: model_rows, type: volume, model: orders, threshold: 1, severity: warning}
- {name: nightly, type: volume, table: raw.orders, schedule: {cron: "0 3 * * *"}, after_jobs: [nothing]}
"""
SEQUENCE = ["rows_min", "rows_rel", "fresh", "cols", "negative", "big_ok"]
MODELS = ["built", "model_rows"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory, monkeypatch_module, receiver):
    shop = make_shop(tmp_path_factory, monkeypatch_module, receiver, MONITORS)
    run = shop.app.run_job("build")
    assert run.status.value == "success", shop.app.runs.logs(run.id)
    for check in shop.app.store.monitors.checks(states=("pending",)):  # queued by that run: not wanted here
        shop.app.store.monitors.finish(check.id)
    yield shop
    shop.app.close()


def statuses(outcomes) -> dict[str, str]:
    return {o.monitor: o.status for o in outcomes}


def send(app) -> None:
    app.alerts.send_pending(time.monotonic() + 5, wait=True)
    app.alerts.sender.wait(time.monotonic() + 5)


def monitor_deliveries(app) -> list[dict]:
    return [d for d in app.alerts.deliveries(limit=500) if d["kind"] == "monitor"]


def test_monitors_alert_once_per_change_and_resolve(shop, receiver):
    app = shop.app
    first = app.monitors.check(SEQUENCE + MODELS)
    assert statuses(first) == {
        "rows_min": "ok", "rows_rel": "warming_up", "fresh": "ok", "cols": "ok", "negative": "ok", "big_ok": "ok",
        "built": "ok", "model_rows": "ok",
    }  # fmt: skip
    by = {o.monitor: o for o in first}
    # models resolved from the last manifest; "built" is the model's last successful build
    assert "last successful build" in by["built"].message and by["model_rows"].value == 20
    assert not monitor_deliveries(app)

    old = (datetime.now(UTC) - timedelta(days=2)).replace(tzinfo=None).isoformat(sep=" ")
    shop.sql(
        "delete from raw.orders where id > 2",
        f"update raw.orders set loaded_at = timestamp '{old}'",
        "insert into raw.orders values (3, -5, null)",
        "alter table raw.orders add column note varchar",
        "alter table raw.orders alter column amount type bigint",
    )
    second = app.monitors.check(SEQUENCE)
    by = {o.monitor: o for o in second}
    assert statuses(second) == {
        "rows_min": "alert", "rows_rel": "alert", "fresh": "alert", "cols": "alert", "negative": "alert",
        "big_ok": "ok",
    }  # fmt: skip
    assert "fewer than the minimum 5" in by["rows_min"].message
    assert "-85.0%" in by["rows_rel"].message
    assert "older than 6 hours" in by["fresh"].message
    assert by["cols"].message == "amount changed type (INTEGER -> BIGINT); note added"
    assert by["negative"].message == "1 failing row" and by["negative"].value == 1
    sample = app.monitors.history("negative", 1)[0]["detail"]
    assert sample["columns"] == ["id", "amount"] and sample["sample"] == [["3", "-5"]]
    alerts = monitor_deliveries(app)
    assert sorted(d["subject"] for d in alerts) == sorted(
        f"monitor:{n}@prod" for n in ("rows_min", "rows_rel", "fresh", "cols", "negative")
    )
    send(app)
    texts = [r.json["text"] for r in receiver.requests]
    assert any("Monitor negative alerted in prod" in t for t in texts), texts
    assert all(SLACK_SECRET not in json.dumps(d) for d in app.alerts.deliveries(limit=500))

    third = app.monitors.check(SEQUENCE)  # nothing changed: still alerting, no second alert
    assert statuses(third)["rows_min"] == "alert" and statuses(third)["negative"] == "alert"
    assert statuses(third)["cols"] == "ok"  # the new columns are the new baseline: resolved
    assert statuses(third)["rows_rel"] == "ok"  # unchanged since the last measurement
    after = monitor_deliveries(app)
    assert len(after) == len(alerts) + 2  # cols and rows_rel resolved, nothing else
    assert {d["subject"] for d in after[: len(after) - len(alerts)]} == {"monitor:cols@prod", "monitor:rows_rel@prod"}

    shop.sql("delete from raw.orders where amount < 0")
    shop.load(30, start=100)
    fourth = app.monitors.check(["rows_min", "fresh", "negative"])
    assert set(statuses(fourth).values()) == {"ok"}
    resolved = [d for d in monitor_deliveries(app) if d["event"] == "resolved"]
    assert {d["subject"] for d in resolved} == {
        f"monitor:{n}@prod" for n in ("cols", "rows_rel", "rows_min", "fresh", "negative")
    }
    send(app)
    assert any("negative is back to normal" in r.json["text"] for r in receiver.requests)
    states = {r["name"]: r["status"] for r in app.monitors.list()}
    assert states["negative"] == "ok" and states["cols"] == "ok"


def test_the_consumer_queues_a_check_after_the_job_and_the_duty_runs_it(shop):
    app = shop.app
    run = app.run_job("build")  # a foreground run delivers its events: the consumer queues
    assert run.status.value == "success"
    deliver_run_events(app, run.id)
    [check] = [c for c in app.store.monitors.checks() if c.key == f"after_job:{run.id}"]
    # every monitor of the job's tables (raw.orders is read by the model orders; nightly is
    # listed after another job only)
    assert "nightly" not in check.monitors and {"built", "model_rows", "rows_min"} <= set(check.monitors)
    duty = RunMonitors(app)
    duty.run(Tick(datetime.now(UTC), TickReport(), {}))
    duty._thread.join(timeout=120)
    assert duty.ran >= 1
    [done] = [c for c in app.store.monitors.checks() if c.id == check.id]
    assert done.state == "done" and done.error is None
    [latest] = app.monitors.history("model_rows", 1)
    assert latest["trigger"] == "after_job" and latest["run_id"] == run.id


def test_a_cron_fire_is_queued_once(shop):
    app = shop.app
    duty = RunMonitors(app)
    fire_time = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    assert duty.fire(fire_time + timedelta(minutes=1)) == 1
    assert duty.fire(fire_time + timedelta(minutes=2)) == 0  # the same fire
    assert duty.fire(fire_time + timedelta(minutes=30)) == 0  # past the window: nothing
    [check] = [c for c in app.store.monitors.checks() if c.key.startswith("schedule:nightly@prod:")]
    assert check.monitors == ["nightly"] and check.trigger == "schedule"
    app.store.monitors.finish(check.id)


def test_cli_and_api(shop):
    from dockyard.api.app import create_app
    from dockyard.cli.main import cli

    config = str(shop.root / "dockyard.yml")
    runner = CliRunner()
    listed = runner.invoke(
        cli, ["monitors", "--json", "--config", config], env={"DOCKYARD_STORE_URL": shop.app.store_url}
    )
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["negative"]["status"] == "ok" and rows["nightly"]["environment"] == "prod"
    shown = runner.invoke(
        cli, ["monitors", "history", "negative", "--config", config], env={"DOCKYARD_STORE_URL": shop.app.store_url}
    )
    assert shown.exit_code == 0 and "failing row" in shown.output
    missing = runner.invoke(
        cli, ["monitors", "history", "nope", "--config", config], env={"DOCKYARD_STORE_URL": shop.app.store_url}
    )
    assert missing.exit_code != 0 and "no monitor named 'nope'" in missing.output

    with TestClient(create_app(shop.app)) as client:
        listing = client.get("/api/v1/monitors").json()["data"]
        assert {m["name"] for m in listing} >= {"rows_min", "negative"}
        history = client.get("/api/v1/monitors/negative", params={"limit": 2}).json()["data"]
        assert len(history["measurements"]) == 2 and history["measurements"][0]["status"] == "ok"
        assert client.get("/api/v1/monitors/nope").status_code == 404
        answer = client.post("/api/v1/monitors/rows_min/check")
        assert answer.status_code == 202, answer.text
    pending = [c for c in shop.app.store.monitors.checks(states=("pending",)) if c.trigger == "manual"]
    assert [c.monitors for c in pending] == [["rows_min"]]
