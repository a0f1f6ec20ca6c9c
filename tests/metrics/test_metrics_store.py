"""The metrics queries on SQLite and PostgreSQL: durations in SQL, cumulative buckets,
baselines by window function, the history queue's claims and the digest's exactly-once."""

from __future__ import annotations

from datetime import timedelta

from tests.metrics.conftest import T0, record_run

from dockyard.domain import NodeResult, RunStatus
from dockyard.store import Store

BOUNDS = (1.0, 10.0, 100.0)


def test_run_durations_and_queue_waits_in_buckets(store: Store) -> None:
    for seconds, wait in ((0.5, 2.0), (5.0, 20.0), (50.0, 200.0)):
        record_run(store, "nightly", "prod", {"model.p.a": seconds}, duration_s=seconds, wait_s=wait)
    record_run(store, "nightly", "prod", {"model.p.a": 1.0}, status=RunStatus.ERROR, duration_s=500.0)
    [ok] = [r for r in store.metrics.run_duration_buckets(BOUNDS) if r["labels"] == ("nightly", "success")]
    assert ok["count"] == 3 and abs(ok["sum"] - 55.5) < 0.01
    assert ok["le"] == [1, 2, 3]
    [failed] = [r for r in store.metrics.run_duration_buckets(BOUNDS) if r["labels"] == ("nightly", "error")]
    assert failed["count"] == 1 and failed["le"] == [0, 0, 0]
    [waits] = store.metrics.queue_wait_buckets(BOUNDS)
    assert waits["labels"] == ("prod",) and waits["count"] == 4 and waits["le"] == [0, 2, 3]  # 2, 5, 20, 200 s
    assert sorted(store.metrics.run_totals()) == [("nightly", "prod", "error", 1), ("nightly", "prod", "success", 3)]


def test_compiled_nodes_are_not_executions(store: Store) -> None:
    run_id = record_run(store, "nightly", "prod", {"model.p.a": 2.0, "test.p.t": (0.1, "fail")})
    store.runs.upsert_nodes(
        run_id, 2, [NodeResult("model.p.b", name="b", resource_type="model", status="compiled", execution_time_s=0.2)]
    )
    assert store.metric_state.count_run(run_id) == 1
    models = store.metrics.model_duration_buckets(10)
    assert [m["labels"] for m in models] == [("model.p.a", "prod")]
    assert store.metrics.model_history("model.p.b") == []
    assert store.metrics.test_failure_totals() == [("prod", 1)]
    rows = store.metrics.node_rows(since=T0 - timedelta(days=1))
    assert [r.unique_id for r in rows] == ["model.p.a"]


def test_baselines_are_the_last_successes_before_the_run(store: Store) -> None:
    ids = [
        record_run(store, "nightly", "prod", {"model.p.a": float(i)}, at=T0 + timedelta(hours=i)) for i in range(1, 8)
    ]
    record_run(store, "nightly", "prod", {"model.p.a": (99.0, "error")}, at=T0 + timedelta(hours=8))
    record_run(store, "hourly", "dev", {"model.p.a": 1000.0}, at=T0 + timedelta(hours=9))  # another environment
    later = record_run(store, "nightly", "prod", {"model.p.a": 3.0}, at=T0 + timedelta(hours=10))
    assert store.metric_state.baselines("prod", ["model.p.a"], later, 3) == {"model.p.a": [7.0, 6.0, 5.0]}
    assert store.metric_state.baselines("prod", ["model.p.a", "model.p.x"], ids[2], 10) == {"model.p.a": [2.0, 1.0]}


def test_history_writes_are_claimed_once_and_backed_off(store: Store) -> None:
    assert store.metric_state.queue_history(1, "prod", now=T0) is True
    assert store.metric_state.queue_history(1, "prod", now=T0) is False  # an event delivered twice
    store.metric_state.queue_history(2, "dev", now=T0)
    [first] = store.metric_state.claim_history("a", 60, limit=1, now=T0)
    assert first["run_id"] == 1 and first["attempts"] == 1
    assert [r["run_id"] for r in store.metric_state.claim_history("b", 600, now=T0)] == [2]  # 1 is held
    assert store.metric_state.claim_history("c", 60, now=T0) == []
    assert store.metric_state.history_failed(1, "a", "boom", T0 + timedelta(minutes=1)) is True
    assert store.metric_state.claim_history("c", 60, now=T0 + timedelta(seconds=30)) == []
    [again] = store.metric_state.claim_history("c", 60, now=T0 + timedelta(minutes=2))
    assert again["attempts"] == 2
    assert store.metric_state.history_done(1, "a", 3) is False  # "a" lost it
    assert store.metric_state.history_done(1, "c", 3) is True
    store.metric_state.queue_history(3, "prod", now=T0)
    busy = store.metric_state.claim_history(
        "d", 60, skip_environments=["prod"], skip_newer_than=T0 - timedelta(1), now=T0
    )
    assert busy == []  # prod is busy and the write is recent
    states = {r["run_id"]: r["state"] for r in store.metric_state.history_writes()}
    assert states == {1: "done", 2: "pending", 3: "pending"}


def test_a_digest_day_is_claimed_once(store: Store) -> None:
    assert store.metric_state.claim_digest("2026-11-01", "a", 60, now=T0) is True
    assert store.metric_state.claim_digest("2026-11-01", "b", 60, now=T0) is False
    # a claimer that died: taken over after its lease, and once sent, never again
    assert store.metric_state.claim_digest("2026-11-01", "b", 60, now=T0 + timedelta(minutes=2)) is True
    store.metric_state.digest_sent("2026-11-01", "b", 1, now=T0)
    assert store.metric_state.claim_digest("2026-11-01", "c", 60, now=T0 + timedelta(hours=1)) is False
    assert store.metric_state.digest("2026-11-01")["queued"] == 1


def test_the_model_histogram_counts_each_run_once(store: Store) -> None:
    a = record_run(store, "nightly", "prod", {"model.p.a": 0.3, "model.p.b": 45.0}, at=T0)
    b = record_run(store, "nightly", "prod", {"model.p.a": 7.0}, at=T0 + timedelta(hours=1))
    c = record_run(store, "hourly", "dev", {"model.p.c": 2000.0}, at=T0 + timedelta(hours=2))
    assert [store.metric_state.count_run(r) for r in (a, b, c, a, b)] == [2, 1, 1, 0, 0]  # again: nothing
    rows = {m["labels"]: m for m in store.metrics.model_duration_buckets(10)}
    a_prod = rows[("model.p.a", "prod")]
    assert a_prod["count"] == 2 and a_prod["sum"] == 7.3
    assert a_prod["le"] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]  # 0.3 s and 7 s
    assert rows[("model.p.c", "dev")]["le"][-1] == 0 and rows[("model.p.c", "dev")]["count"] == 1  # over 1800 s
    assert [m["labels"][0] for m in store.metrics.model_duration_buckets(2)] == ["model.p.a", "model.p.c"]
