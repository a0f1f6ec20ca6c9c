"""Slowdown alerts over a synthetic history: one alert per run listing the slow models, no
repeat while a model stays slow, a resolve once every model the alert named is back under."""

from __future__ import annotations

from datetime import timedelta

from tests.metrics.conftest import T0, record_run

from dockyard.app.consumers import builtin_sinks
from dockyard.app.slowdown import decide, factory, subject_of

A, B, C = "model.p.a", "model.p.b", "model.p.c"


def _history(app, runs: int = 6):
    for i in range(runs):
        record_run(app.store, "nightly", "prod", {A: 20.0 + i % 3, B: 30.0, C: 1.0}, at=T0 + timedelta(hours=i))


def _run(app, hour: int, **times):
    nodes = {A: 21.0, B: 30.0, C: 1.0} | {f"model.p.{k}": v for k, v in times.items()}
    return record_run(app.store, "nightly", "prod", nodes, at=T0 + timedelta(hours=hour))


def _deliver(app, run_id):
    """The run's events through the built-in consumer, as the dispatcher hands them over."""
    [consumer] = [s for s in builtin_sinks(app) if s.name == "dockyard.slowdown"]
    for event in app.store.outbox.run_events(run_id):
        consumer.deliver(event)
        consumer.deliver(event)  # at least once: a second delivery changes nothing


def _slowdowns(app):
    return [d for d in app.alerts.deliveries(limit=100) if d["kind"] == "slowdown"]


def test_decide_is_pure_and_needs_history():
    base = {A: [10.0] * 5, B: [10.0] * 4}
    became, recovered = decide({A: ("a", 31.0), B: ("b", 99.0)}, base, set(), factor=3, min_runs=5, min_seconds=10)
    assert [s.unique_id for s in became] == [A] and recovered == []  # B has 4 runs of history only
    assert decide({A: ("a", 29.0)}, base, {A}, factor=3, min_runs=5, min_seconds=10) == ([], [A])
    small = {A: [1.0] * 5}
    assert decide({A: ("a", 9.0)}, small, set(), factor=3, min_runs=5, min_seconds=10) == ([], [])  # under min_seconds
    assert subject_of([B, A], "prod") == f"model:{A}+{B}@prod"
    assert len(subject_of([f"model.p.m{i:04d}" for i in range(100)], "prod")) < 420


def test_one_alert_per_run_no_repeat_then_resolved(app):
    _history(app)
    slow = _run(app, 10, a=90.0, b=200.0)  # both slow in one run: ONE alert, two items
    _deliver(app, slow)
    [alert] = _slowdowns(app)
    assert alert["event"] == "slow" and alert["run_id"] == slow and alert["channel"] == "ops"
    assert alert["subject"] == f"model:{A}+{B}@prod"
    detail = app.store.notifications.deliveries(limit=10)[0].alert
    assert [i["unique_id"] for i in detail["items"]] == [B, A]  # the worst ratio first
    assert "x its median of 30.0 s over 6 runs" in detail["items"][0]["message"]

    still = _run(app, 11, a=95.0, b=210.0)  # still slow: no new alert
    _deliver(app, still)
    assert len(_slowdowns(app)) == 1

    half = _run(app, 12, a=21.0, b=220.0)  # A is back, B is not: the alert stays open
    _deliver(app, half)
    assert len(_slowdowns(app)) == 1
    assert app.store.metric_state.slow_states("prod").keys() == {B}

    back = _run(app, 13, b=31.0)  # every model of the alert is back: resolved, same subject
    _deliver(app, back)
    resolved = [d for d in _slowdowns(app) if d["event"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["subject"] == alert["subject"] and resolved[0]["run_id"] == back
    assert app.store.metric_state.slow_states("prod") == {}


def test_other_environments_and_failures_do_not_count(app):
    _history(app)
    record_run(app.store, "hourly", "dev", {A: 500.0}, at=T0 + timedelta(hours=9))  # dev has no history
    bad = record_run(app.store, "nightly", "prod", {A: (500.0, "error")}, at=T0 + timedelta(hours=10))
    for run_id in (bad,):
        _deliver(app, run_id)
    consumer = factory(app)
    assert consumer.check_run(bad) == []
    assert _slowdowns(app) == []


def test_the_consumer_exists_only_when_enabled_and_someone_listens(make_app):
    assert factory(make_app()) is not None
    assert factory(make_app("metrics: {slowdown: {enabled: false}}\n", name="off")) is None
