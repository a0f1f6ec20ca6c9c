"""The outbox on both stores: every path that ends a run writes its final event in the same
transaction, once; the other events; the sinks' cursors; ids that commit in order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dockyard.domain import NodeResult, RunStatus, StepStatus
from dockyard.events import MAX_MESSAGE_CHARS, RunEvent
from dockyard.store import Store
from dockyard.store.fires import JobFires
from dockyard.store.outbox import EventRow, write_events
from dockyard.store.tables import outbox

T0 = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
CMDS = ["dbt seed", "dbt run"]


@pytest.fixture
def job_id(store: Store) -> int:
    return store.jobs.sync_jobs([{"name": "a", "environment": "prod"}])["a"]


def claimed(store: Store, job_id: int, now: datetime = T0):
    store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual", coalesce=False)
    claim = store.queue.claim("w1", "host1", overlap_jobs={job_id}, now=now)
    assert claim is not None
    return claim


def types(store: Store, run_id: int) -> list[str]:
    return [e.type.value for e in store.outbox.run_events(run_id)]


def final(store: Store, run_id: int):
    finals = [e for e in store.outbox.run_events(run_id) if e.type.is_final]
    assert len(finals) == 1, finals
    assert finals[0].key == f"run:{run_id}:final"
    return finals[0]


def test_a_run_through_its_life(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    run_id = claim.run_id
    assert store.runs.transition_run(run_id, RunStatus.RUNNING, expected={RunStatus.STARTING}, epoch=claim.epoch)
    store.runs.start_step(run_id, 1, T0, epoch=claim.epoch)
    store.runs.upsert_nodes(run_id, 1, [NodeResult("seed.a.s", "s", "seed", "success")], epoch=claim.epoch)
    store.runs.finish_step(run_id, 1, StepStatus.SUCCESS, 0, T0, epoch=claim.epoch)
    store.runs.finish_step(run_id, 2, StepStatus.SUCCESS, 0, T0, epoch=claim.epoch)
    assert store.leases.finish_run(run_id, RunStatus.SUCCESS, None, epoch=claim.epoch) is RunStatus.SUCCESS
    assert types(store, run_id) == ["run.queued", "run.started", "step.finished", "step.finished", "run.succeeded"]
    event = final(store, run_id)
    payload = event.payload
    assert payload["run_id"] == run_id and payload["job"] == "a" and payload["job_id"] == job_id
    assert payload["environment"] == "prod" and payload["trigger"] == "manual" and payload["attempt"] == 1
    assert payload["status"] == "success" and payload["reason"] is None
    assert [s["status"] for s in payload["steps"]] == ["success", "success"]
    assert payload["failed_nodes"] == [] and payload["failed_nodes_total"] == 0
    step = store.outbox.run_events(run_id)[2]
    assert step.payload["step"]["index"] == 1 and step.payload["step"]["command"] == "dbt seed"
    assert step.key == f"run:{run_id}:step:1:{claim.epoch}"


def test_a_failed_run_lists_its_failed_nodes_bounded(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    long = "x" * (MAX_MESSAGE_CHARS * 3)
    nodes = [NodeResult(f"model.a.m{i}", f"m{i}", "model", "error", message=long) for i in range(25)]
    store.runs.upsert_nodes(
        claim.run_id, 2, [*nodes, NodeResult("model.a.ok", "ok", "model", "success")], epoch=claim.epoch
    )
    store.leases.finish_run(claim.run_id, RunStatus.ERROR, "step_failed", epoch=claim.epoch)
    payload = final(store, claim.run_id).payload
    assert final(store, claim.run_id).type is RunEvent.FAILED
    assert payload["failed_nodes_total"] == 25 and len(payload["failed_nodes"]) == 20
    assert all(len(n["message"]) == MAX_MESSAGE_CHARS for n in payload["failed_nodes"])
    assert payload["failed_nodes"][0]["step_index"] == 2
    failed = [e for e in store.outbox.run_events(claim.run_id) if e.type is RunEvent.NODE_FAILED]
    assert len(failed) == 25 and failed[0].payload["node"]["unique_id"] == "model.a.m0"
    # the same failure reported again (a later event of the node) is not a second event
    store.runs.upsert_nodes(claim.run_id, 2, nodes[:1], epoch=None)
    assert len([e for e in store.outbox.run_events(claim.run_id) if e.type is RunEvent.NODE_FAILED]) == 25


def test_timeout_is_run_timed_out(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.leases.finish_run(claim.run_id, RunStatus.ERROR, "timeout", epoch=claim.epoch)
    assert final(store, claim.run_id).type is RunEvent.TIMED_OUT


def test_the_reaper_writes_run_failed_worker_lost(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    reaped = store.leases.reap(30, now=T0 + timedelta(minutes=5))
    assert [r.run_id for r in reaped] == [claim.run_id]
    event = final(store, claim.run_id)
    assert event.type is RunEvent.FAILED and event.payload["reason"] == "worker_lost"
    assert [s["status"] for s in event.payload["steps"]] == ["skipped", "skipped"]
    # the lost owner's late finish changes nothing and writes no second event
    assert store.leases.finish_run(claim.run_id, RunStatus.SUCCESS, None, epoch=claim.epoch) is None
    final(store, claim.run_id)


def test_start_timeout_reap(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.leases.reap(3600, now=T0 + timedelta(seconds=120), start_timeout_s=60)
    event = final(store, claim.run_id)
    assert event.type is RunEvent.FAILED and event.payload["reason"] == "start_timeout"


def test_cancelling_a_queued_run(store: Store, job_id: int) -> None:
    run_id = store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual").run_id
    assert store.leases.request_cancel(run_id) == "cancelled"
    assert types(store, run_id) == ["run.queued", "run.cancelled"]
    assert store.leases.request_cancel(run_id) == "final"
    final(store, run_id)


def test_a_cancel_acknowledged_before_the_finish_wins(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    assert store.leases.request_cancel(claim.run_id) == "requested"
    assert store.leases.finish_run(claim.run_id, RunStatus.SUCCESS, None, epoch=claim.epoch) is RunStatus.CANCELLED
    assert final(store, claim.run_id).type is RunEvent.CANCELLED


def test_a_graceful_requeue_of_a_cancelled_run(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.leases.request_cancel(claim.run_id)
    assert store.leases.requeue(claim.run_id, claim.epoch)
    assert final(store, claim.run_id).type is RunEvent.CANCELLED


def test_a_requeued_run_starts_again_under_a_new_key(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.runs.transition_run(claim.run_id, RunStatus.RUNNING, epoch=claim.epoch)
    assert store.leases.requeue(claim.run_id, claim.epoch)
    again = store.queue.claim("w2", "host2", overlap_jobs={job_id})
    store.runs.transition_run(again.run_id, RunStatus.RUNNING, epoch=again.epoch)
    started = [e.key for e in store.outbox.run_events(claim.run_id) if e.type is RunEvent.STARTED]
    assert started == [f"run:{claim.run_id}:started:{claim.epoch}", f"run:{claim.run_id}:started:{again.epoch}"]
    assert not [e for e in store.outbox.run_events(claim.run_id) if e.type.is_final]


def test_a_foreground_run_and_a_retry(store: Store, job_id: int) -> None:
    first = store.runs.create_run(job_id, "a", "prod", CMDS)
    store.runs.transition_run(first, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id="h:1")
    store.leases.finish_run(first, RunStatus.ERROR, "setup_failed")
    assert final(store, first).payload["reason"] == "setup_failed"
    retry = store.queue.enqueue(
        job_id, "a", "prod", CMDS, trigger="retry", fire_key=f"retry:{first}", attempt=2, retry_of=first
    ).run_id
    queued = store.outbox.run_events(retry)[0]
    assert queued.type is RunEvent.QUEUED
    assert queued.payload["retry_of"] == first and queued.payload["attempt"] == 2


def test_cron_batches_write_queued_events(store: Store, job_id: int) -> None:
    times = [T0, T0 + timedelta(minutes=1)]
    result = store.queue.enqueue_fires([JobFires(job_id, "a", "prod", CMDS, 0, False, times, times[-1])])
    assert len(result.created) == 2
    for run_id in result.created:
        assert types(store, run_id) == ["run.queued"]
        assert store.outbox.run_events(run_id)[0].payload["trigger"] == "schedule"


def test_events_are_written_once_per_key(store: Store) -> None:
    row = EventRow("run:1:final", RunEvent.SUCCEEDED, 1, {"a": 1})
    with store.engine.begin() as conn:
        write_events(conn, [row, None])
    with store.engine.begin() as conn:
        write_events(conn, [EventRow("run:1:final", RunEvent.FAILED, 1, {"a": 2})])
    with store.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.type, outbox.c.payload)).all()
    assert [(r.type, r.payload) for r in rows] == [("run.succeeded", {"a": 1})]


# -- cursors ---------------------------------------------------------------------------------
def test_one_dispatcher_per_sink(store: Store, job_id: int) -> None:
    store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual")
    first = store.outbox.claim_cursor("log", "s1", 30, now=T0)
    assert first is not None and first.last_id == 0  # a new sink gets the last hour's events
    assert store.outbox.claim_cursor("log", "s2", 30, now=T0 + timedelta(seconds=10)) is None
    assert store.outbox.claim_cursor("other", "s2", 30, now=T0) is not None  # another sink: free
    assert store.outbox.claim_cursor("log", "s1", 30, now=T0 + timedelta(seconds=20)) is not None  # renewed
    assert store.outbox.advance_cursor("log", "s1", 1)
    assert not store.outbox.advance_cursor("log", "s2", 2)  # not the holder: nothing changes
    taken = store.outbox.claim_cursor("log", "s2", 30, now=T0 + timedelta(seconds=51))  # the lease expired
    assert taken is not None and taken.last_id == 1 and taken.holder == "s2"
    assert not store.outbox.advance_cursor("log", "s1", 2)
    assert store.outbox.cursor_failed("log", "s2", "boom", T0 + timedelta(seconds=60)) == 1
    assert store.outbox.cursor_failed("log", "s2", "boom", T0 + timedelta(seconds=62)) == 2
    assert store.outbox.cursor("log").last_error == "boom"
    assert store.outbox.advance_cursor("log", "s2", 2)
    assert store.outbox.cursor("log").failures == 0
    store.outbox.release_cursor("log", "s2")
    assert store.outbox.claim_cursor("log", "s1", 30, now=T0 + timedelta(seconds=52)) is not None


def test_a_new_sink_does_not_get_old_history(store: Store, job_id: int) -> None:
    store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert store.outbox.claim_cursor("late", "s1", 30, now=later).last_id == store.outbox.last_event_id()


def test_prune_keeps_what_a_sink_has_not_had(store: Store, job_id: int) -> None:
    for _ in range(3):
        store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual", coalesce=False)
    store.outbox.claim_cursor("log", "s1", 30)
    store.outbox.advance_cursor("log", "s1", 2)
    future = datetime.now(UTC) + timedelta(days=1)
    assert store.outbox.prune_outbox(future, ["log", "never-seen"]) == 0  # a sink without a cursor yet
    assert store.outbox.prune_outbox(future, ["log"]) == 2
    assert [e.id for e in store.outbox.events_after(0)] == [3]


@pytest.mark.postgres
def test_event_ids_commit_in_order_on_postgresql(store: Store, job_id: int) -> None:
    """A reader must never see event n+1 while event n can still commit: on PostgreSQL the
    sequence hands out ids before commit, so the outbox write serialises its writers."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE")
    holding, seen = threading.Event(), {}

    def slow_writer() -> None:
        with store.engine.begin() as conn:
            write_events(conn, [EventRow("slow", RunEvent.SUCCEEDED, None, {})])
            holding.set()
            time.sleep(1.0)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert holding.wait(10)

    def fast_writer() -> None:
        with store.engine.begin() as conn:
            write_events(conn, [EventRow("fast", RunEvent.SUCCEEDED, None, {})])

    writer = threading.Thread(target=fast_writer)
    writer.start()
    time.sleep(0.4)
    seen["during"] = [e.key for e in store.outbox.events_after(0)]
    thread.join(10)
    writer.join(10)
    assert seen["during"] == [], "an event became visible before an earlier id committed"
    assert [e.key for e in store.outbox.events_after(0)] == ["slow", "fast"]


def test_a_node_key_is_storable_and_unique_whatever_the_node_id():
    from dockyard.events import node_key

    plain = node_key(4, 1, "model.shop.orders", 0)
    assert plain == "run:4:node:1:model.shop.orders:0"
    nul, replaced, long = (
        node_key(4, 1, uid, 0) for uid in ("model.shop.nul\x00", "model.shop.nul\ufffd", "m." + "x" * 300)
    )
    assert len({nul, replaced, long}) == 3
    assert replaced == "run:4:node:1:model.shop.nul\ufffd:0"
    assert all(len(k) <= 255 and "\x00" not in k and "sha256-" in k for k in (nul, long))
