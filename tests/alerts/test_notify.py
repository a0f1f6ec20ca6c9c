"""Alerts without dbt: runs recorded in the store as workers record them, their real events
delivered to the alerts consumer, messages received by loopback Slack and PagerDuty servers.

Routing and flags, the re-alert interval, resolves only to the channels that got the failure,
retries of a delivery after 500s, a hanging channel, duplicate event delivery, the digest's
named channels, the scheduler's duties, and no secret in the store, logs, API or CLI."""

from __future__ import annotations

import json
import logging
import time

from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.alerts.conftest import PD_KEY, SLACK_SECRET, foreground, record_run
from typer.testing import CliRunner

from dockyard.alert import Alert, AlertKind, Severity
from dockyard.api.app import create_app
from dockyard.app.delivery import deliver_run_events
from dockyard.app.run_alerts import RunAlerts
from dockyard.domain import RunStatus
from dockyard.server.scheduler import Scheduler
from dockyard.store.tables import alert_state, notifications

BASE = """
environments: {prod: {target: prod}, dev: {target: dev}}
alerts: {allow_hosts: ["127.0.0.0/8"], backoff_seconds: 0.05, timeout_seconds: 2, max_attempts: 4}
server: {public_url: "https://dockyard.example.com"}
jobs:
  - name: nightly
    environment: prod
    commands: ["dbt run"]
    notifications:
      - {type: slack, webhook_url: "env:ALERTS_SLACK_URL"}
  - name: hourly
    environment: dev
    commands: ["dbt run"]
"""


def slack_env(monkeypatch, receiver) -> str:
    url = receiver.url(f"/services/{SLACK_SECRET}")
    monkeypatch.setenv("ALERTS_SLACK_URL", url)
    return url


def texts(receiver) -> list[str]:
    return [r.json["text"] for r in receiver.requests]


def test_one_message_per_failed_run_naming_the_model_then_resolved(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE)
    failed = record_run(app, "nightly")
    foreground(app, failed)
    assert len(slack.requests) == 1
    body = json.dumps(slack.requests[0].json)
    assert "nightly failed in prod" in slack.requests[0].json["text"]
    assert "fct_orders" in body and "Binder Error" in body
    assert f"https://dockyard.example.com/runs/{failed}" in body
    assert "stg_ok" not in body  # only the failed nodes
    fixed = record_run(app, "nightly", RunStatus.SUCCESS)
    foreground(app, fixed)
    assert len(slack.requests) == 2
    assert "Resolved: nightly succeeded in prod" in slack.requests[1].json["text"]
    [row] = app.alerts.deliveries(fixed)
    assert (row["event"], row["status"], row["attempts"]) == ("resolved", "sent", 1)
    # a second success is no news (on_success is off)
    foreground(app, record_run(app, "nightly", RunStatus.SUCCESS))
    assert len(slack.requests) == 2


def test_a_job_that_keeps_failing_alerts_once_per_interval(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE)
    runs = [record_run(app, "nightly") for _ in range(3)]
    for run_id in runs:
        foreground(app, run_id)
    assert len(slack.requests) == 1
    statuses = [app.alerts.deliveries(r)[0]["status"] for r in runs]
    assert statuses == ["sent", "suppressed", "suppressed"]
    # after the interval it alerts again
    with app.store.engine.begin() as conn:
        [sent_at] = conn.execute(select(alert_state.c.last_sent_at)).scalars()
        conn.execute(alert_state.update().values(last_sent_at=sent_at - _hours(2)))
    foreground(app, record_run(app, "nightly"))
    assert len(slack.requests) == 2


def _hours(n: int):
    from datetime import timedelta

    return timedelta(hours=n)


def test_a_delivery_is_retried_after_500s(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE)
    slack.answer(500, "oops")
    slack.answer(503, "busy")
    run_id = record_run(app, "nightly")
    foreground(app, run_id)
    assert len(slack.requests) == 3
    [row] = app.alerts.deliveries(run_id)
    assert (row["status"], row["attempts"], row["result"]) == ("sent", 3, "200")
    # the log shows it: dockyard show, text and JSON
    from dockyard.cli.main import cli

    shown = CliRunner().invoke(cli, ["show", str(run_id), "--config", str(app.loaded.path)])
    assert shown.exit_code == 0, shown.output
    assert "notifications" in shown.output and "job:nightly:0" in shown.output and "sent" in shown.output
    as_json = CliRunner().invoke(cli, ["show", str(run_id), "--json", "--config", str(app.loaded.path)])
    [logged] = json.loads(as_json.output)["notifications"]
    assert logged["attempts"] == 3 and logged["status"] == "sent"


def test_a_channel_that_keeps_failing_is_marked_failed(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE.replace("max_attempts: 4", "max_attempts: 2"))
    for _ in range(2):
        slack.answer(500, "down")
    run_id = record_run(app, "nightly")
    foreground(app, run_id)
    [row] = app.alerts.deliveries(run_id)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert "500" in row["last_error"] and SLACK_SECRET not in row["last_error"]
    slack.answer(404, "no_service")  # not retryable
    monkeypatch.setenv("ALERTS_SLACK_URL", slack.url(f"/services/{SLACK_SECRET}x"))
    other = record_run(app, "nightly", RunStatus.ERROR, reason="timeout")  # another event: not suppressed
    foreground(app, other)
    [row] = app.alerts.deliveries(other)
    assert (row["status"], row["attempts"]) == ("failed", 1)


def test_a_hanging_channel_delays_nothing_else(make_app, slack, other, monkeypatch):
    slack_env(monkeypatch, slack)
    slack.hang = 30
    monkeypatch.setenv("ALERTS_OTHER_URL", other.url("/services/other"))
    app = make_app(
        BASE.replace("max_attempts: 4", "max_attempts: 1")
        + """
notifications:
  - {name: team, type: slack, webhook_url: "env:ALERTS_OTHER_URL"}
"""
    )
    run_id = record_run(app, "nightly")
    started = time.monotonic()
    foreground(app, run_id, wait_s=5)
    took = time.monotonic() - started
    assert len(other.requests) == 1  # delivered although the job's channel hangs
    assert took < 2 + 3  # the hanging one is cut at alerts.timeout_seconds (2 s)
    rows = {r["channel"]: r for r in app.alerts.deliveries(run_id)}
    assert rows["team"]["status"] == "sent"
    assert rows["job:nightly:0"]["status"] == "failed"
    assert "timed out" in rows["job:nightly:0"]["last_error"] or "timeout" in rows["job:nightly:0"]["last_error"]


def test_an_event_delivered_twice_sends_one_message(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE)
    run_id = record_run(app, "nightly")
    [final] = [e for e in app.store.reader.outbox.run_events(run_id) if e.type.is_final]
    consumer = RunAlerts(app)
    consumer.deliver(final)
    consumer.deliver(final)
    foreground(app, run_id)  # and once more through the outbox
    assert len(slack.requests) == 1
    assert len(app.alerts.deliveries(run_id)) == 1


def test_routing_flags_and_top_level_filters(make_app, slack, other, monkeypatch):
    slack_env(monkeypatch, slack)
    monkeypatch.setenv("ALERTS_OTHER_URL", other.url("/services/other"))
    app = make_app(
        BASE.replace(
            '{type: slack, webhook_url: "env:ALERTS_SLACK_URL"}',
            '{type: slack, webhook_url: "env:ALERTS_SLACK_URL", on_start: true, on_cancel: true, on_warning: true}',
        )
        + """
notifications:
  - {name: prod-only, type: slack, webhook_url: "env:ALERTS_OTHER_URL", environments: [prod]}
  - {name: hourly-only, type: slack, webhook_url: "env:ALERTS_OTHER_URL", jobs: [hourly], kinds: [freshness]}
"""
    )
    foreground(app, record_run(app, "hourly"))  # dev, no job channel, the filters exclude it
    assert not slack.requests and not other.requests
    cancelled = record_run(app, "nightly", RunStatus.CANCELLED, reason="cancelled")
    foreground(app, cancelled)
    events = sorted((r["channel"], r["event"]) for r in app.alerts.deliveries(cancelled))
    assert events == [("job:nightly:0", "cancelled"), ("job:nightly:0", "started")]  # on_start, on_cancel
    assert len(slack.requests) == 2 and any("nightly was cancelled in prod" in t for t in texts(slack))
    assert any("nightly started in prod" in t for t in texts(slack))
    warned = record_run(app, "nightly", RunStatus.SUCCESS, warnings=True)
    foreground(app, warned)
    assert any("nightly succeeded with warnings in prod" in t for t in texts(slack))
    failed = record_run(app, "nightly")
    foreground(app, failed)
    routed = sorted((r["channel"], r["event"]) for r in app.alerts.deliveries(failed))
    # prod-only has the default flags: the failure, not the start
    assert routed == [("job:nightly:0", "failed"), ("job:nightly:0", "started"), ("prod-only", "failed")]
    assert not other.requests or all("hourly" not in t for t in texts(other))


def test_resolve_goes_only_to_channels_that_got_the_failure(make_app, slack, other, monkeypatch):
    slack_env(monkeypatch, slack)
    monkeypatch.setenv("ALERTS_OTHER_URL", other.url("/services/other"))
    app = make_app(
        BASE.replace('commands: ["dbt run"]\n    notifications:', 'commands: ["dbt run"]\n    notifications:', 1)
    )
    foreground(app, record_run(app, "nightly"))
    assert len(slack.requests) == 1
    # a channel added after the failure hears of no failure: it gets no resolve
    config = app.loaded.path
    config.write_text(
        config.read_text()
        + 'notifications:\n  - {name: late, type: slack, webhook_url: "env:ALERTS_OTHER_URL", on_resolved: true}\n'
    )
    from tests.alerts.conftest import open_app

    app2 = open_app(config)
    try:
        fixed = record_run(app2, "nightly", RunStatus.SUCCESS)
        foreground(app2, fixed)
        assert len(slack.requests) == 2 and not other.requests
        assert [r["channel"] for r in app2.alerts.deliveries(fixed)] == ["job:nightly:0"]
    finally:
        app2.close()


def test_named_channels_skip_filters_and_no_storm_rules(make_app, slack, other, monkeypatch):
    slack_env(monkeypatch, slack)
    monkeypatch.setenv("ALERTS_OTHER_URL", other.url("/services/other"))
    monkeypatch.setenv("ALERTS_PD_KEY", PD_KEY)
    app = make_app(
        BASE
        + """
notifications:
  - {name: digest-room, type: slack, webhook_url: "env:ALERTS_OTHER_URL", jobs: [nobody]}
  - {name: pd, type: pagerduty, integration_key: "env:ALERTS_PD_KEY"}
"""
    )
    digest = Alert(AlertKind.DIGEST, "digest", "digest:2026-12-02", "digest:2026-12-02", "Daily digest", Severity.INFO)
    assert app.alerts.notify(digest, channels=["digest-room", "missing"]) == 1
    assert app.alerts.notify(digest, channels=["digest-room"]) == 0  # idempotent on its key
    app.alerts.send_pending(time.monotonic() + 5, wait=True)
    assert len(other.requests) == 1 and "Daily digest" in other.requests[0].json["text"]


def test_the_scheduler_delivers_and_sends(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE)
    run_id = record_run(app, "nightly", worker=True)
    scheduler = Scheduler(app, "test-scheduler")
    try:
        deadline = time.monotonic() + 20
        while not slack.requests and time.monotonic() < deadline:
            scheduler.tick()
            time.sleep(0.2)
    finally:
        scheduler.close()
    assert len(slack.requests) == 1
    assert app.alerts.deliveries(run_id)[0]["status"] == "sent"


def test_no_secret_in_the_store_logs_api_or_cli(make_app, slack, other, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    url = slack_env(monkeypatch, slack)
    monkeypatch.setenv("ALERTS_PD_KEY", PD_KEY)
    pd = (
        f'{{name: pd, type: pagerduty, integration_key: "env:ALERTS_PD_KEY", events_url: "{other.url("/v2/enqueue")}"}}'
    )
    app = make_app(BASE + f"\nnotifications:\n  - {pd}\n")
    slack.answer(500, f"echo {url}")  # receivers that echo the secret in their error
    other.answer(500, f"bad key {PD_KEY}")
    run_id = record_run(app, "nightly")
    foreground(app, run_id)
    assert len(slack.requests) == 2 and len(other.requests) == 2  # each: a 500, then a 200
    assert other.requests[0].json["routing_key"] == PD_KEY  # the key did go to PagerDuty
    with app.store.engine.connect() as conn:
        stored = json.dumps([dict(r) for r in conn.execute(select(notifications)).mappings()], default=str)
        stored += json.dumps([dict(r) for r in conn.execute(select(alert_state)).mappings()], default=str)
    api = create_app(app)
    with TestClient(api, base_url="https://testserver") as client:
        answer = client.get(f"/api/v1/runs/{run_id}/notifications")
    assert answer.status_code == 200 and len(answer.json()["data"]) == 2
    from dockyard.cli.main import cli

    shown = CliRunner().invoke(cli, ["show", str(run_id), "--json", "--config", str(app.loaded.path)])
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in {"store": stored, "api": answer.text, "cli": shown.output, "logs": logs}.items():
        assert SLACK_SECRET not in text, where
        assert PD_KEY not in text, where
    assert client is not None


def test_validate_warns_about_a_literal_webhook_url(make_app):
    app = make_app(BASE.replace("env:ALERTS_SLACK_URL", "https://hooks.slack.com/services/" + SLACK_SECRET))
    warnings = [c for c in app.validate().checks if c.name == "notifications"]
    assert len(warnings) == 1 and warnings[0].warning
    assert "a webhook URL in dockyard.yml is a secret in git: use env:NAME" in warnings[0].detail
    assert SLACK_SECRET not in warnings[0].detail


def test_notify_test_sends_a_sample(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    app = make_app(BASE)
    from dockyard.cli.main import cli

    answer = CliRunner().invoke(cli, ["notify", "test", "job:nightly:0", "--config", str(app.loaded.path)])
    assert answer.exit_code == 0, answer.output
    assert "Sent a test message to job:nightly:0 (slack): 200" in answer.output
    assert "dockyard test message" in slack.requests[0].json["text"]
    missing = CliRunner().invoke(cli, ["notify", "test", "nope", "--config", str(app.loaded.path)])
    assert missing.exit_code != 0 and "job:nightly:0" in missing.output
    slack.answer(500, "down")
    failing = CliRunner().invoke(cli, ["notify", "test", "job:nightly:0", "--config", str(app.loaded.path)])
    assert failing.exit_code != 0 and SLACK_SECRET not in failing.output


def test_a_failure_whose_retry_is_coming_is_deferred_then_retrying(make_app, slack, monkeypatch):
    slack_env(monkeypatch, slack)
    monkeypatch.setenv("ALERTS_PD_KEY", PD_KEY)
    app = make_app(
        BASE.replace(
            'commands: ["dbt run"]\n    notifications:',
            'commands: ["dbt run"]\n    retries: {max_attempts: 3, backoff_seconds: 30, on: any}\n    notifications:',
            1,
        )
        + "\nnotifications:\n  - {name: pd, type: pagerduty, integration_key: env:ALERTS_PD_KEY, "
        + f'events_url: "{slack.url("/v2/enqueue")}"}}\n'
    )
    run_id = record_run(app, "nightly", worker=True)
    deliver_run_events(app, run_id)  # the consumer sees the failure before the worker queued the retry
    assert app.store.notifications.deferred(run_id=run_id)
    assert not app.alerts.deliveries(run_id)
    retry = app.runs.maybe_retry(run_id)
    assert retry
    app.alerts.flush_run(run_id, wait_s=5)
    assert len(slack.requests) == 1  # Slack only: PagerDuty is not paged for a retried failure
    assert "Retrying in 30 s, attempt 2 of 3" in json.dumps(slack.requests[0].json)
    assert not app.store.notifications.deferred(run_id=run_id)
