"""The monitors: block (config/monitors.py), the consumer's choice of monitors after a run, and
the verdicts (app/measurements.py), without dbt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from tests.alerts.conftest import make_app, record_run  # noqa: F401  (fixtures and helpers)

from dockyard.app import measurements as ms
from dockyard.app.monitor_checks import MonitorConsumer
from dockyard.config.model import Config
from dockyard.config.monitors import Monitor, parse_duration
from dockyard.domain import NodeResult, RunStatus


def config(*monitors: dict, jobs: list | None = None, envs=("prod",)) -> Config:
    return Config.model_validate(
        {"environments": {e: {"target": e} for e in envs}, "jobs": jobs or [], "monitors": list(monitors)}
    )


def test_thresholds_and_durations():
    assert parse_duration("6 hours") == 6 * 3600 and parse_duration("30 minutes") == 1800
    assert parse_duration("2 days") == 2 * 86400 and parse_duration("90s") == 90
    vol = lambda t: Monitor(name="v", type="volume", table="s.t", threshold=t).parsed_threshold()  # noqa: E731
    assert (vol(None).kind, vol("anomaly").kind) == ("anomaly", "anomaly")
    assert (vol(1000).kind, vol(1000).value) == ("min_rows", 1000)
    assert (vol("10%").kind, vol("10%").value) == ("relative", 0.1)
    fresh = Monitor(name="f", type="freshness", model="orders", threshold="6 hours", timestamp_column="loaded_at")
    assert fresh.parsed_threshold().value == 21600


@pytest.mark.parametrize(
    ("monitor", "problem"),
    [
        ({"name": "a", "type": "volume"}, "needs a table or a model"),
        ({"name": "a", "type": "volume", "table": "s.t", "model": "m"}, "not both"),
        ({"name": "a", "type": "volume", "table": "no_schema"}, "schema.table"),
        ({"name": "a", "type": "freshness", "table": "s.t"}, "needs a threshold"),
        ({"name": "a", "type": "freshness", "table": "s.t", "threshold": "soon"}, "not a duration"),
        ({"name": "a", "type": "volume", "table": "s.t", "threshold": "lots"}, "must be a row count"),
        ({"name": "a", "type": "schema", "table": "s.t", "threshold": 3}, "takes no threshold"),
        ({"name": "a", "type": "sql"}, "needs sql"),
        ({"name": "a", "type": "sql", "sql": "select * from {{ ref('x') }}"}, "relation('model')"),
        ({"name": "a", "type": "volume", "table": "s.t", "timestamp_column": "ts"}, "for type freshness"),
    ],
)
def test_bad_monitors_are_config_errors(monitor, problem):
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        config(monitor)


def test_names_are_unique():
    with pytest.raises(ValidationError, match="two monitors are named 'a'"):
        config({"name": "a", "type": "schema", "table": "s.t"}, {"name": "a", "type": "schema", "table": "s.u"})


def test_verdicts():
    m = Monitor(name="v", type="volume", table="s.t", threshold="10%")
    assert ms.judge_volume(m, 100, datetime.now(UTC), [], None).status == "warming_up"
    assert ms.judge_volume(m, 105, datetime.now(UTC), [], 100).status == "ok"
    assert ms.judge_volume(m, 80, datetime.now(UTC), [], 100).status == "alert"
    f = Monitor(name="f", type="freshness", model="x", threshold="1 hour")
    now = datetime.now(UTC)
    assert ms.judge_freshness(f, now - timedelta(minutes=5), now, "x").status == "ok"
    late = ms.judge_freshness(f, now - timedelta(hours=3), now, "max(ts)")
    assert late.status == "alert" and "3.0 hours old: older than 1 hour" in late.message
    assert ms.judge_freshness(f, None, now, "build").status == "alert"
    assert ms.normalise_type("character varying(256)") == ms.normalise_type("TEXT") == "text"
    assert ms.normalise_type("decimal(10, 2)") == "numeric(10,2)" != ms.normalise_type("numeric(12,2)")
    assert ms.schema_changes([["a", "INT4"], ["b", "text"]], [["A", "integer"], ["c", "date"]]) == [
        {"change": "added", "column": "c", "type": "date"},
        {"change": "removed", "column": "b", "type": "text"},
    ]
    assert ms.parse_timestamp("2026-12-02 10:00:00").tzinfo is UTC
    sql, tokens = ms.sql_with_relations("select * from {{ relation('orders') }} join {{relation(\"x\")}}")
    assert tokens == {"__dockyard_relation_0__": "orders", "__dockyard_relation_1__": "x"} and "{{" not in sql


class Event:
    def __init__(self, type_, payload):
        self.type, self.payload, self.key = type_, payload, f"{type_}:{payload['run_id']}"


MINI_MONITORS = """
environments: {prod: {target: dev}}
jobs:
  - {name: nightly, environment: prod, commands: ["dbt run"]}
  - {name: other, environment: prod, commands: ["dbt run"]}
monitors:
  - {name: by_model, type: volume, model: model.mini.stg_numbers}
  - {name: by_table, type: volume, table: main.numbers_summary}
  - {name: listed, type: schema, table: main.elsewhere, after_jobs: [other]}
  - {name: unrelated, type: schema, model: echo}
"""


def test_the_consumer_queues_after_successful_runs_only(make_app):  # noqa: F811
    app = make_app(MINI_MONITORS)
    consumer = MonitorConsumer(app)
    ok = record_run(app, "nightly", RunStatus.SUCCESS)
    nodes = [
        NodeResult(unique_id=f"model.mini.{n}", name=n, resource_type="model", status="success")
        for n in ("stg_numbers", "numbers_summary")
    ]
    app.store.runs.upsert_nodes(ok, 1, nodes)
    consumer.deliver(Event("run.succeeded", {"run_id": ok, "job": "nightly", "environment": "prod"}))
    [check] = app.store.monitors.checks()
    assert check.key == f"after_job:{ok}" and check.monitors == ["by_model", "by_table"] and check.job == "nightly"
    consumer.deliver(Event("run.succeeded", {"run_id": ok, "job": "nightly", "environment": "prod"}))
    assert len(app.store.monitors.checks()) == 1  # delivered twice: queued once
    failed = record_run(app, "other")
    consumer.deliver(Event("run.failed", {"run_id": failed, "job": "other", "environment": "prod"}))
    assert len(app.store.monitors.checks()) == 1  # a failed run queues nothing
    again = record_run(app, "other", RunStatus.SUCCESS)
    consumer.deliver(Event("run.succeeded", {"run_id": again, "job": "other", "environment": "prod"}))
    assert app.store.monitors.checks()[0].monitors == ["listed"]
