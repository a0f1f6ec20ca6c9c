"""The warehouse history's queue without a warehouse: the consumer queues ended runs of the
chosen environments once; a write that fails is retried with backoff, then given up, and the
duty's thread never raises."""

from __future__ import annotations

from datetime import timedelta

from tests.metrics.conftest import record_run

from dockyard import clock
from dockyard.app.consumers import builtin_sinks
from dockyard.app.history import MAX_ATTEMPTS, chunks, factory, history_rows, retry_at, write_pending
from dockyard.server.duties import Tick, TickReport, WriteWarehouseHistory

ON = "metrics: {warehouse_history: {enabled: true, environments: [prod]}}\n"


def test_the_consumer_queues_ended_runs_of_its_environments(make_app):
    assert factory(make_app()) is None  # off by default
    app = make_app(ON, name="on")
    [consumer] = [s for s in builtin_sinks(app) if s.name == "dockyard.warehouse_history"]
    prod = record_run(app.store, "nightly", "prod", {"model.p.a": 1.0})
    dev = record_run(app.store, "hourly", "dev", {"model.p.a": 1.0})
    for run_id in (prod, dev):
        for event in app.store.outbox.run_events(run_id):  # queued, started, final
            consumer.deliver(event)
            consumer.deliver(event)
    assert [(w["run_id"], w["state"]) for w in app.store.metric_state.history_writes()] == [(prod, "pending")]


def test_rows_and_chunks():
    class Run:  # the fields history_rows reads
        id, job, environment, trigger, started_at, finished_at, nodes = 7, "j", "prod", "cron", None, None, []

        class status:
            value = "success"

    [row] = history_rows(Run, clock.now())
    assert row[:5] == [7, "j", "prod", "cron", "success"] and row[7:14] == [None] * 7
    parts = chunks([[i, "x" * 1000] for i in range(300)], limit=50_000)
    assert len(parts) == 7 and sum(len(p) for p in parts) == 300


def test_a_failing_write_backs_off_then_gives_up(make_app):
    app = make_app(ON, name="on")  # no dbt project here: every write fails
    run_id = record_run(app.store, "nightly", "prod", {"model.p.a": 1.0})
    app.store.metric_state.queue_history(run_id, "prod")
    now = clock.now()
    assert write_pending(app, "w", now=now) == [(run_id, "retry")]
    [row] = app.store.metric_state.history_writes()
    assert row["state"] == "pending" and row["attempts"] == 1 and row["last_error"]
    assert row["next_attempt_at"] > now + timedelta(seconds=20)
    assert write_pending(app, "w", now=now) == []  # backing off
    assert retry_at(now, 1) == now + timedelta(seconds=30) and retry_at(now, 2) == now + timedelta(seconds=60)
    assert retry_at(now, MAX_ATTEMPTS) is None
    with app.store.db.write() as conn:  # the last attempt
        from sqlalchemy import update

        from dockyard.store.tables import history_writes

        conn.execute(update(history_writes).values(attempts=MAX_ATTEMPTS - 1, next_attempt_at=now))
    assert write_pending(app, "w", now=now + timedelta(seconds=1)) == [(run_id, "failed")]
    duty = WriteWarehouseHistory(app)
    duty.run(Tick(now, TickReport(), {}))  # nothing due: the thread starts, writes nothing, ends
    duty.close()
    assert duty.last == [] and app.store.metric_state.history_writes()[0]["state"] == "failed"
