"""Source freshness end to end: a freshness job on its own schedule, run for real (dbt on
DuckDB, foreground runs through the App), its history in the store, one alert per status
change through a Slack channel on a loopback server, the CLI and the API.

One project per module: the tests below share its history and run in file order (the first
builds the transitions the others read)."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from tests.freshness.conftest import ENV, JOB
from typer.testing import CliRunner

from dockyard.api.app import create_app
from dockyard.app.freshness import FreshnessConsumer
from dockyard.events import RunEvent

pytestmark = pytest.mark.slow
ORDERS = "source.fresh.raw.orders"
CUSTOMERS = "source.fresh.raw.customers"


def freshness_deliveries(app) -> list[dict]:
    return sorted((d for d in app.alerts.deliveries(limit=100) if d["kind"] == "freshness"), key=lambda d: d["id"])


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    return predicate()


@pytest.fixture(scope="module")
def history(project, slack):
    """Runs the freshness job through pass, warn, warn, error (with a runtime error), pass;
    returns the runs and the freshness alerts queued after each."""
    app = project.app()
    steps = []
    plan = [
        ("pass", dict(orders=0.1, customers=0.1)),
        ("warn", dict(orders=2)),
        ("warn again", {}),
        ("error", dict(orders=30, customers=None)),  # customers: the table is gone
        ("pass", dict(orders=0.1, customers=0.1)),
    ]
    for label, loads in plan:
        project.load(**loads)
        run = app.run_job(JOB)
        steps.append((label, run, [d["alert_key"] for d in freshness_deliveries(app)]))
    yield app, steps
    app.close()


def test_a_freshness_job_runs_on_its_own_schedule(history):
    app, steps = history
    record, job = app.job(JOB)
    assert job.all_commands == ["dbt source freshness"] and record.cron == "*/30 * * * *"
    assert app.next_fires(record, 1)  # the scheduler fires it
    statuses = [(label, run.status.value, run.reason, run.has_warnings) for label, run, _ in steps]
    # dbt exits 0 on warn (the run succeeds with warnings) and 1 on error (the step fails)
    assert statuses[1] == ("warn", "success", None, True)
    assert statuses[3][1:3] == ("error", "step_failed")
    assert statuses[0][1:] == ("success", None, False)
    # the built-in consumer has its own outbox cursor, delivered up to the last run's events
    cursor = app.store.reader.outbox.cursor("dockyard.freshness")
    assert cursor is not None and cursor.last_id >= app.store.reader.outbox.last_event_id(steps[-1][1].id)


def test_one_alert_per_status_change(history, slack):
    app, steps = history
    queued = [keys for _, _, keys in steps]
    runs = [run.id for _, run, _ in steps]
    assert queued[0] == []  # the first checks pass: nothing
    assert queued[1] == [f"freshness:{runs[1]}:1:warn"]
    assert queued[2] == queued[1]  # still warn: nothing new
    assert queued[3] == queued[2] + [f"freshness:{runs[3]}:1:error"]
    assert queued[4] == queued[3] + [f"freshness:{runs[4]}:1:pass"]
    by_key = {d["alert_key"]: d for d in freshness_deliveries(app)}
    assert [by_key[k]["event"] for k in queued[4]] == ["warn", "error", "pass"]
    assert {d["subject"] for d in by_key.values()} == {f"freshness:{ENV}"}
    assert all(d["channel"] == "data-team" and d["status"] != "suppressed" for d in by_key.values())

    # the messages Slack got: one per change, the error one listing both sources
    def texts():
        bodies = [json.dumps(b) for b in slack.bodies]
        return bodies if len(bodies) >= 3 else None

    bodies = wait_for(texts) or [json.dumps(b) for b in slack.bodies]
    assert len(bodies) == 3, bodies
    assert "raw.orders" in bodies[0] and "warn" in bodies[0]
    assert "raw.orders" in bodies[1] and "raw.customers" in bodies[1] and "runtime error" in bodies[1]
    assert "fresh again" in bodies[2]


def test_history_is_kept_per_source(history):
    app, steps = history
    orders = app.freshness.history(ORDERS)
    assert [r["status"] for r in orders] == ["pass", "error", "warn", "warn", "pass"]
    assert [r["run_id"] for r in orders] == [run.id for _, run, _ in reversed(steps)]
    assert orders[2]["previous_status"] == "warn" and orders[3]["previous_status"] == "pass"
    assert orders[4]["previous_status"] is None
    warn = orders[2]
    assert 7000 < warn["age_seconds"] < 7400 and warn["age"].startswith("2 h")
    assert warn["warn_after"] == {"count": 1, "period": "hour"}
    assert warn["thresholds"] == "warn after 1 hour, error after 24 hours"
    customers = app.freshness.history("raw.customers", ENV)
    assert customers[1]["status"] == "runtime error" and "customers" in customers[1]["error"]
    by_table = app.freshness.history("orders", limit=2)  # by table name, bounded
    assert [r["id"] for r in by_table] == [r["id"] for r in orders[:2]]
    latest = {r["unique_id"]: r for r in app.freshness.latest()}
    assert set(latest) == {ORDERS, CUSTOMERS} and {r["status"] for r in latest.values()} == {"pass"}
    assert latest[ORDERS]["run_id"] == steps[-1][1].id and latest[ORDERS]["age_now_seconds"] >= 0
    assert app.freshness.stale() == [] and app.freshness.latest("staging") == []


def test_a_redelivered_event_records_and_alerts_nothing_twice(history):
    app, steps = history
    run = steps[3][1]  # the error step
    event = next(e for e in app.store.reader.outbox.run_events(run.id) if e.type == RunEvent.STEP_FINISHED)
    rows = len(app.freshness.history(ORDERS)) + len(app.freshness.history(CUSTOMERS))
    before = [(d["id"], d["status"]) for d in freshness_deliveries(app)]
    FreshnessConsumer(app).deliver(event)
    FreshnessConsumer(app).deliver(event)
    assert len(app.freshness.history(ORDERS)) + len(app.freshness.history(CUSTOMERS)) == rows
    assert [(d["id"], d["status"]) for d in freshness_deliveries(app)] == before


def test_cli_table_history_and_json(history, project):
    from dockyard.cli.main import cli

    runner = CliRunner()
    config = str(project.path / "dockyard.yml")
    result = runner.invoke(cli, ["freshness", "--config", config])
    assert result.exit_code == 0, result.output
    assert "raw.orders" in result.output and "raw.customers" in result.output and "pass" in result.output
    assert "warn after 1 hour, error after 24 hours" in result.output
    result = runner.invoke(cli, ["freshness", "--config", config, "--source", "raw.orders", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["status"] for r in rows] == ["pass", "error", "warn", "warn", "pass"] and rows[0]["unique_id"] == ORDERS
    result = runner.invoke(cli, ["freshness", "--config", config, "--env", ENV, "--json"])
    assert {r["source"] for r in json.loads(result.output)} == {"raw.orders", "raw.customers"}
    result = runner.invoke(cli, ["freshness", "--config", config, "--source", "raw.nothing"])
    assert result.exit_code == 0 and "No freshness check of source 'raw.nothing' is recorded yet" in result.output
    result = runner.invoke(cli, ["freshness", "--config", config, "--env", "nowhere"])
    assert result.exit_code == 1 and "unknown environment 'nowhere'" in result.output


def test_api_latest_and_history(history):
    app, steps = history
    _, token = app.store.tokens.create_token("fresh-read", "read")
    with TestClient(create_app(app), base_url="https://testserver") as client:
        headers = {"Authorization": f"Token {token}"}
        assert client.get("/api/v1/freshness").status_code == 401
        body = client.get("/api/v1/freshness", params={"environment": ENV}, headers=headers).json()
        assert {r["unique_id"] for r in body["data"]} == {ORDERS, CUSTOMERS} and body["extra"]["stale"] == 0
        body = client.get(f"/api/v1/freshness/{ORDERS}", params={"limit": 500}, headers=headers).json()
        assert body["extra"]["limit"] == 100 and len(body["data"]) == len(steps)
        page = client.get(f"/api/v1/freshness/{ORDERS}", params={"limit": 2}, headers=headers).json()["data"]
        after = client.get(
            f"/api/v1/freshness/{ORDERS}", params={"limit": 2, "before_id": page[-1]["id"]}, headers=headers
        ).json()["data"]
        assert [r["status"] for r in page + after] == ["pass", "error", "warn", "warn"]
        missing = client.get("/api/v1/freshness/source.fresh.raw.nothing", headers=headers)
        assert missing.status_code == 404 and missing.json()["data"] is None
        assert "nothing" in missing.json()["status"]["user_message"]
        nul = client.get("/api/v1/freshness/source.fresh.raw%00orders", headers=headers)
        assert nul.status_code == 400 and "NUL" in nul.json()["status"]["user_message"]


def test_a_scheduled_run_is_recorded_by_the_dispatcher(history, project):
    """The server's path (last: it adds to the history): the run is queued, claimed and
    executed by a worker, and the scheduler's dispatcher delivers its events to the consumer."""
    from dockyard.app.delivery import SinkDelivery, build_sinks

    app, steps = history
    project.load(orders=2)
    run_id = app.triggers.enqueue(JOB, trigger="schedule").run_id
    claim = app.store.queue.claim("test-worker", "test-host")
    assert claim is not None and claim.run_id == run_id
    assert app.execute(run_id, epoch=claim.epoch).status.value == "success"
    assert app.freshness.history(ORDERS, limit=1)[0]["run_id"] != run_id  # nothing delivered yet
    (consumer,) = [s for s in build_sinks(app) if s.name == "dockyard.freshness"]
    delivery = SinkDelivery(app.store, consumer, "test-dispatcher")
    while delivery.run_pass().more:
        pass
    latest = app.freshness.history(ORDERS, limit=1)[0]
    assert (latest["run_id"], latest["status"], latest["previous_status"]) == (run_id, "warn", "pass")
    assert freshness_deliveries(app)[-1]["alert_key"] == f"freshness:{run_id}:1:warn"
