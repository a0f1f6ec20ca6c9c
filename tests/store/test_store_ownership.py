"""Who owns a run: fencing, heartbeats, the reaper, cancel requests and requeue."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.domain import ArtifactRef, NodeResult, RunStatus, StepStatus
from dockyard.errors import ConflictError, FencedError, NotFoundError
from dockyard.store import Claim, Store
from dockyard.store.ownership import HeartbeatResult

T0 = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
CMDS = ["dbt seed", "dbt run", "dbt test"]
MODEL = "model.shop.orders"


@pytest.fixture
def job_id(store: Store) -> int:
    return store.jobs.sync_jobs([{"name": "a", "environment": "prod"}])["a"]


def claimed(store: Store, job_id: int, worker: str = "w1", now: datetime = T0) -> Claim:
    store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual", coalesce=False)
    claim = store.queue.claim(worker, "host1", overlap_jobs={job_id}, now=now)
    assert claim is not None
    return claim


def snapshot(store: Store, run_id: int):
    run = store.runs.get_run(run_id)
    run.updated_at = None  # the fence itself bumps updated_at, but only when it passes
    return run


# -- fencing ---------------------------------------------------------------------------------
FENCED_WRITES: dict[str, Callable[[Store, int, int], object]] = {
    "start_step": lambda s, r, e: s.runs.start_step(r, 2, T0, epoch=e),
    "finish_step": lambda s, r, e: s.runs.finish_step(r, 1, StepStatus.SUCCESS, 0, T0, log_path="x", epoch=e),
    "skip_steps": lambda s, r, e: s.runs.skip_steps(r, 1, epoch=e),
    "upsert_nodes": lambda s, r, e: s.runs.upsert_nodes(r, 1, [NodeResult(MODEL, status="success")], epoch=e),
    "upsert_no_nodes": lambda s, r, e: s.runs.upsert_nodes(r, 1, [], epoch=e),
    "add_artifacts": lambda s, r, e: s.runs.add_artifacts(r, [ArtifactRef(1, "manifest.json", "s1/m.json")], epoch=e),
    "set_run_fields": lambda s, r, e: s.runs.set_run_fields(r, artifacts_dir="stolen", epoch=e),
    "set_run_pgid": lambda s, r, e: s.runs.set_run_pgid(r, e, 4242),
}


def rival_requeue_and_claim(store: Store, claim: Claim) -> None:
    assert store.leases.requeue(claim.run_id, claim.epoch)
    assert store.queue.claim("w2", "host2", overlap_jobs={claim.job_id}).epoch == claim.epoch + 2


def rival_reap(store: Store, claim: Claim) -> None:
    assert [r.run_id for r in store.leases.reap(30, now=T0 + timedelta(minutes=5))] == [claim.run_id]


def rival_epoch_bump(store: Store, claim: Claim) -> None:  # "a second session bumps the epoch"
    store.runs.set_run_fields(claim.run_id, lease_epoch=claim.epoch + 1)


def finished(store: Store, claim: Claim) -> None:  # the owner itself ended the run
    assert store.runs.transition_run(claim.run_id, RunStatus.SUCCESS, epoch=claim.epoch)


RIVALS = {
    "requeue+claim": rival_requeue_and_claim,
    "reap": rival_reap,
    "epoch_bump": rival_epoch_bump,
    "finished": finished,
}


@pytest.mark.parametrize("write", FENCED_WRITES)
@pytest.mark.parametrize("rival", RIVALS)
def test_a_fenced_write_after_losing_the_run_writes_nothing(store: Store, job_id: int, write: str, rival: str) -> None:
    claim = claimed(store, job_id)
    store.runs.start_step(claim.run_id, 1, T0, epoch=claim.epoch)
    RIVALS[rival](store, claim)
    before = snapshot(store, claim.run_id)
    with pytest.raises(FencedError) as caught:
        FENCED_WRITES[write](store, claim.run_id, claim.epoch)
    assert isinstance(caught.value, ConflictError) and caught.value.status == 409
    assert snapshot(store, claim.run_id) == before


@pytest.mark.parametrize("write", FENCED_WRITES)
def test_the_owner_passes_the_fence(store: Store, job_id: int, write: str) -> None:
    claim = claimed(store, job_id)
    FENCED_WRITES[write](store, claim.run_id, claim.epoch)
    run = store.runs.get_run(claim.run_id)
    assert run.lease_epoch == claim.epoch and run.updated_at > T0
    with pytest.raises(FencedError):  # a wrong epoch is refused even while the run is active
        FENCED_WRITES[write](store, claim.run_id, claim.epoch + 1)


def test_fenced_write_to_a_missing_run(store: Store, job_id: int) -> None:
    with pytest.raises(FencedError, match="no longer exists"):
        store.runs.start_step(999, 1, T0, epoch=1)


def test_unfenced_writes_still_work(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.runs.set_run_fields(claim.run_id, lease_epoch=9)
    store.runs.start_step(claim.run_id, 1, T0)  # no epoch: no check (foreground runs, admin tools)
    assert store.runs.get_run(claim.run_id).steps[0].status is StepStatus.RUNNING


def test_old_epoch_cannot_transition(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    rival_requeue_and_claim(store, claim)
    assert not store.runs.transition_run(claim.run_id, RunStatus.SUCCESS, epoch=claim.epoch)
    assert store.runs.get_run(claim.run_id).status is RunStatus.STARTING


# -- heartbeats ------------------------------------------------------------------------------
def test_heartbeat_reports_lost_and_cancel_requested(store: Store, job_id: int) -> None:
    mine = [claimed(store, job_id) for _ in range(4)]
    other = claimed(store, job_id, worker="w2")
    rival_requeue_and_claim(store, mine[1])  # lost to a rival
    store.runs.transition_run(mine[2].run_id, RunStatus.SUCCESS)  # ended (e.g. by an admin)
    assert store.leases.request_cancel(mine[3].run_id) == "requested"
    later = T0 + timedelta(seconds=5)
    leases = [(c.run_id, c.epoch) for c in mine] + [(other.run_id, other.epoch)]
    beat = store.leases.heartbeat_runs("w1", leases, now=later)
    assert beat == HeartbeatResult(
        lost=[mine[1].run_id, mine[2].run_id, other.run_id], cancel_requested=[mine[3].run_id]
    )
    assert store.runs.get_run(mine[0].run_id).heartbeat_at == later
    assert store.runs.get_run(mine[3].run_id).heartbeat_at == later
    assert store.runs.get_run(other.run_id).heartbeat_at == T0  # not w1's to renew
    assert store.leases.heartbeat_runs("w1", []) == HeartbeatResult()


# -- reaper ----------------------------------------------------------------------------------
def test_reap_ends_stale_runs_once(store: Store, job_id: int) -> None:
    stale = claimed(store, job_id, now=T0)
    store.runs.start_step(stale.run_id, 1, T0, epoch=stale.epoch)
    store.runs.set_run_pgid(stale.run_id, stale.epoch, 777)
    fresh = claimed(store, job_id, now=T0)
    store.leases.heartbeat_runs("w1", [(fresh.run_id, fresh.epoch)], now=T0 + timedelta(seconds=60))
    queued = store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual", coalesce=False).run_id
    foreground = store.runs.create_run(job_id, "a", "prod", CMDS)  # `dockyard run`: never claimed
    store.runs.transition_run(foreground, RunStatus.RUNNING, heartbeat_at=T0)

    now = T0 + timedelta(seconds=65)
    assert store.leases.reap(30, now=T0 + timedelta(seconds=20)) == []
    [reaped] = store.leases.reap(30, now=now)
    assert (
        reaped.run_id,
        reaped.worker_id,
        reaped.host,
        reaped.pgid,
        reaped.epoch,
        reaped.attempt,
        reaped.job_id,
        reaped.reason,
        reaped.cancel_requested,
    ) == (stale.run_id, "w1", "host1", 777, stale.epoch, 1, job_id, "worker_lost", False)
    assert store.leases.reap(30, now=now) == []  # a second reaper finds nothing
    run = store.runs.get_run(stale.run_id)
    assert (run.status, run.reason, run.finished_at, run.lease_epoch) == (
        RunStatus.ERROR,
        "worker_lost",
        now,
        stale.epoch + 1,
    )
    assert [s.status for s in run.steps] == [StepStatus.ERROR, StepStatus.SKIPPED, StepStatus.SKIPPED]
    assert run.steps[0].finished_at == now
    for untouched in (fresh.run_id, queued, foreground):
        assert not store.runs.get_run(untouched).status.is_final


def test_concurrent_reapers_reap_each_run_once(store: Store, job_id: int) -> None:
    ids = {claimed(store, job_id, now=T0).run_id for _ in range(12)}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: store.leases.reap(30, now=T0 + timedelta(minutes=1)), range(4)))
    reaped = [r.run_id for batch in results for r in batch]
    assert sorted(reaped) == sorted(ids)


def test_reap_start_timeout(store: Store, job_id: int) -> None:
    slow = claimed(store, job_id, now=T0)
    running = claimed(store, job_id, now=T0)
    store.runs.transition_run(running.run_id, RunStatus.RUNNING, epoch=running.epoch)
    now = T0 + timedelta(seconds=200)
    store.leases.heartbeat_runs("w1", [(slow.run_id, slow.epoch), (running.run_id, running.epoch)], now=now)
    assert store.leases.reap(30, now=now) == []  # both heartbeat
    [reaped] = store.leases.reap(30, now=now, start_timeout_s=180)
    assert (reaped.run_id, reaped.reason) == (slow.run_id, "start_timeout")
    assert store.runs.get_run(slow.run_id).reason == "start_timeout"
    assert store.runs.get_run(running.run_id).status is RunStatus.RUNNING


def test_reap_reports_pending_cancel(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id, now=T0)
    store.leases.request_cancel(claim.run_id, now=T0)
    [reaped] = store.leases.reap(30, now=T0 + timedelta(minutes=1))
    assert reaped.cancel_requested


# -- cancel ----------------------------------------------------------------------------------
def test_request_cancel(store: Store, job_id: int) -> None:
    queued = store.queue.enqueue(job_id, "a", "prod", CMDS, trigger="manual").run_id
    assert store.leases.request_cancel(queued, now=T0) == "cancelled"
    run = store.runs.get_run(queued)
    assert (run.status, run.reason, run.finished_at, run.cancel_requested_at) == (
        RunStatus.CANCELLED,
        "cancelled",
        T0,
        T0,
    )
    assert {s.status for s in run.steps} == {StepStatus.SKIPPED}
    assert store.queue.claim("w", "h") is None

    active = claimed(store, job_id)
    assert store.leases.request_cancel(active.run_id, now=T0) == "requested"
    assert store.leases.request_cancel(active.run_id, now=T0 + timedelta(seconds=9)) == "requested"
    run = store.runs.get_run(active.run_id)
    assert (run.status, run.cancel_requested_at, run.lease_epoch) == (RunStatus.STARTING, T0, active.epoch)

    assert store.runs.transition_run(active.run_id, RunStatus.CANCELLED, epoch=active.epoch)
    assert store.leases.request_cancel(active.run_id) == "final"
    assert store.leases.request_cancel(queued) == "final"
    with pytest.raises(NotFoundError):
        store.leases.request_cancel(999)


# -- requeue ---------------------------------------------------------------------------------
def test_requeue_hands_the_run_back(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.runs.set_run_pgid(claim.run_id, claim.epoch, 123)
    store.runs.transition_run(claim.run_id, RunStatus.RUNNING, epoch=claim.epoch, started_at=T0)
    store.runs.start_step(claim.run_id, 1, T0, epoch=claim.epoch)
    store.runs.finish_step(claim.run_id, 1, StepStatus.SUCCESS, 0, T0, epoch=claim.epoch)
    store.runs.start_step(claim.run_id, 2, T0, epoch=claim.epoch)
    store.runs.upsert_nodes(claim.run_id, 2, [NodeResult(MODEL, status="started")], epoch=claim.epoch)

    assert not store.leases.requeue(claim.run_id, claim.epoch + 1)  # not the owner
    assert store.leases.requeue(claim.run_id, claim.epoch)
    assert not store.leases.requeue(claim.run_id, claim.epoch)  # no longer owned
    run = store.runs.get_run(claim.run_id)
    assert (run.status, run.lease_epoch, run.worker_id, run.host, run.pgid, run.claimed_at, run.started_at) == (
        RunStatus.QUEUED,
        claim.epoch + 1,
        None,
        None,
        None,
        None,
        None,
    )
    assert [(s.status, s.exit_code, s.started_at) for s in run.steps] == [(StepStatus.QUEUED, None, None)] * 3
    assert [n.unique_id for n in run.nodes] == [MODEL]  # kept
    again = store.queue.claim("w2", "h2")
    assert (again.run_id, again.epoch, again.commands) == (claim.run_id, claim.epoch + 2, CMDS)


def test_requeue_with_a_pending_cancel_cancels(store: Store, job_id: int) -> None:
    claim = claimed(store, job_id)
    store.runs.start_step(claim.run_id, 1, T0, epoch=claim.epoch)
    store.leases.request_cancel(claim.run_id)
    assert store.leases.requeue(claim.run_id, claim.epoch)
    run = store.runs.get_run(claim.run_id)
    assert (run.status, run.lease_epoch) == (RunStatus.CANCELLED, claim.epoch + 1)
    assert [s.status for s in run.steps] == [StepStatus.CANCELLED, StepStatus.SKIPPED, StepStatus.SKIPPED]
