"""Run alerts on real dbt runs (DuckDB): the issue's "done when" through the CLI on the shop
example (a Slack webhook on the production job, a broken model, one message naming it and
its error, then a resolved message), a retried failure with PagerDuty (executed by a worker:
not paged while a retry comes, paged when final, resolved with the same dedup_key), and a
hanging channel that delays neither the run nor the other channel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.alerts.conftest import PD_KEY, SLACK_SECRET, open_app, write_config

from dockyard.server.worker import Worker

pytestmark = pytest.mark.slow

BROKEN_SQL = "select order_id, no_such_column from {{ ref('stg_orders') }}\n"


def cli(project: Path, env: dict, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(project / "dockyard.yml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_slack_on_the_production_job_one_message_then_resolved(shop: Path, slack, monkeypatch):
    """A new user adds a Slack webhook to the example's production job, breaks a model, and
    gets one message naming it and its error, then a resolved message when it is fixed."""
    config = shop / "dockyard.yml"
    text = config.read_text()
    text = text.replace(
        'commands: ["dbt seed", "dbt source freshness", "dbt snapshot", "dbt run", "dbt test", "dbt docs generate"]',
        'commands: ["dbt seed", "dbt run"]',  # the same job, fewer steps: the test's time budget
    )
    text = text.replace(
        "    notifications: []                  # where to report results (none configured)",
        '    notifications:\n      - {type: slack, webhook_url: "env:SLACK_WEBHOOK_URL"}',
    )
    text += '\nalerts: {allow_hosts: ["127.0.0.1"]}\n'
    config.write_text(text)
    env = dict(os.environ, SLACK_WEBHOOK_URL=slack.url(f"/services/{SLACK_SECRET}"))
    model = shop / "models" / "marts" / "fct_orders.sql"
    good = model.read_text()
    model.write_text(BROKEN_SQL)

    broken = cli(shop, env, "run", "Daily Production Run", "--json")
    assert broken.returncode != 0, broken.stdout[-2000:] + broken.stderr[-2000:]
    assert len(slack.requests) == 1  # delivered before the foreground run exited
    message = slack.requests[0].json
    body = json.dumps(message)
    assert "Daily Production Run failed in prod" in message["text"]
    assert "fct_orders" in body and "no_such_column" in body
    assert SLACK_SECRET not in broken.stdout + broken.stderr
    run_id = json.loads(broken.stdout)["id"]
    shown = cli(shop, env, "show", str(run_id))
    assert "notifications" in shown.stdout and "sent" in shown.stdout, shown.stdout[-2000:]

    model.write_text(good)
    fixed = cli(shop, env, "run", "Daily Production Run", "--json")
    assert fixed.returncode == 0, fixed.stdout[-2000:] + fixed.stderr[-2000:]
    assert len(slack.requests) == 2
    assert "Resolved: Daily Production Run succeeded" in slack.requests[1].json["text"]


MINI = """
environments: {dev: {target: dev}}
profiles_dir: .
alerts: {allow_hosts: ["127.0.0.0/8"], backoff_seconds: 0.05, timeout_seconds: 2, max_attempts: 2}
jobs:
  - name: nightly
    environment: dev
    commands: ["dbt run --select stg_numbers"]
    retries: {max_attempts: 2, backoff_seconds: 0, on: any}
    notifications:
      - {type: slack, webhook_url: "env:ALERTS_SLACK_URL", on_success: true}
      - {type: pagerduty, integration_key: "env:ALERTS_PD_KEY", events_url: "env:ALERTS_PD_URL"}
"""


def test_a_retried_failure_is_not_paged_until_final_then_resolved(mini: Path, slack, other, monkeypatch):
    monkeypatch.setenv("ALERTS_SLACK_URL", slack.url(f"/services/{SLACK_SECRET}"))
    monkeypatch.setenv("ALERTS_PD_KEY", PD_KEY)
    monkeypatch.setenv("ALERTS_PD_URL", other.url("/v2/enqueue"))
    app = open_app(write_config(mini, MINI))
    model = mini / "models" / "stg_numbers.sql"
    good = model.read_text()
    model.write_text("select * from no_such_table\n")
    try:
        first = app.triggers.enqueue("nightly", trigger="manual").run_id
        worker = Worker(app, worker_id="test:1:worker:a")
        assert worker.run_once() == first  # fails; the worker queues its retry
        _deliver_and_send(app, first)
        assert len(slack.requests) == 1 and not other.requests  # not paged: a retry comes
        retrying = json.dumps(slack.requests[0].json)
        assert "Retrying in 0 s, attempt 2 of 2" in retrying and "no_such_table" in retrying
        second = worker.run_once()
        assert second and second != first  # the retry, failing again: final
        _deliver_and_send(app, second)
        assert len(slack.requests) == 2 and len(other.requests) == 1
        trigger = other.requests[0].json
        assert trigger["event_action"] == "trigger" and trigger["routing_key"] == PD_KEY
        assert "Attempt 2 of 2: no more retries" in json.dumps(slack.requests[1].json)

        model.write_text(good)
        third = app.triggers.enqueue("nightly", trigger="manual").run_id
        assert worker.run_once() == third
        _deliver_and_send(app, third)
        assert len(other.requests) == 2
        resolve = other.requests[1].json
        assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]
        assert "Resolved: nightly succeeded in dev" in slack.requests[2].json["text"]
        statuses = [(r["channel"], r["status"]) for r in app.alerts.deliveries(third)]
        assert sorted(statuses) == [("job:nightly:0", "sent"), ("job:nightly:1", "sent")]
    finally:
        app.close()


def _deliver_and_send(app, run_id: int) -> None:
    from tests.alerts.conftest import foreground

    foreground(app, run_id)


def test_a_hanging_channel_delays_neither_the_run_nor_the_other_channel(mini: Path, slack, other, monkeypatch):
    slack.hang = 30  # the job's Slack never answers
    monkeypatch.setenv("ALERTS_SLACK_URL", slack.url(f"/services/{SLACK_SECRET}"))
    monkeypatch.setenv("ALERTS_OTHER_URL", other.url("/services/other"))
    body = MINI.replace("    retries: {max_attempts: 2, backoff_seconds: 0, on: any}\n", "").replace(
        '      - {type: pagerduty, integration_key: "env:ALERTS_PD_KEY", events_url: "env:ALERTS_PD_URL"}\n', ""
    )
    body += '\nnotifications:\n  - {name: team, type: slack, webhook_url: "env:ALERTS_OTHER_URL", on_success: true}\n'
    app = open_app(write_config(mini, body))
    try:
        started = time.monotonic()
        run = app.run_job("nightly")  # foreground: the run, its events, its alerts
        took = time.monotonic() - started
        assert run.status.value == "success"
        assert len(other.requests) == 1  # the other channel got it
        rows = {r["channel"]: r for r in app.alerts.deliveries(run.id)}
        assert rows["team"]["status"] == "sent"
        assert rows["job:nightly:0"]["status"] in ("failed", "pending")
        # the run itself is not longer for it, and the foreground wait is bounded by the
        # channel timeout (2 s per attempt, 2 attempts), not by the hanging receiver (30 s)
        assert took - run.duration_s < 2 * 2 + 4
    finally:
        app.close()
