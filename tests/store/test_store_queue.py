"""The queue: enqueue (fires, coalescing), claim (order, limits), schedule state, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dockyard import clock
from dockyard.domain import RunStatus, StepStatus
from dockyard.store import Claim, EnqueueResult, Store
from dockyard.store.tables import fires

T0 = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
CMDS = ["dbt seed", "dbt build"]


@pytest.fixture
def jobs(store: Store) -> dict[str, int]:
    store.jobs.sync_environments([{"name": "prod"}, {"name": "dev"}])
    return store.jobs.sync_jobs(
        [
            {"name": "a", "environment": "prod"},
            {"name": "b", "environment": "prod"},
            {"name": "c", "environment": "dev"},
        ]
    )


def enq(
    store: Store,
    jobs: dict[str, int],
    name: str = "a",
    env: str | None = None,
    *,
    commands: list[str] = CMDS,
    trigger: str = "manual",
    **kw,
) -> EnqueueResult:
    env = env or ("dev" if name == "c" else "prod")
    return store.queue.enqueue(jobs[name], name, env, commands, trigger=trigger, **kw)


def fire_rows(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(select(fires.c.job_id, fires.c.fire_key, fires.c.run_id).order_by(fires.c.id))
        ]


# -- enqueue ---------------------------------------------------------------------------------
def test_enqueue_creates_a_queued_run_and_records_the_fire(store: Store, jobs: dict[str, int]) -> None:
    result = enq(
        store,
        jobs,
        trigger="schedule",
        fire_key="cron:2026-03-08T07:30:00Z",
        scheduled_for=T0,
        priority=3,
        cause="cron",
        overrides={"threads": 2},
        git_sha="abc",
    )
    assert (result.created, result.coalesced, result.duplicate_fire) == (True, False, False)
    run = store.runs.get_run(result.run_id)
    assert (run.status, run.trigger, run.scheduled_for, run.priority, run.coalesced, run.lease_epoch) == (
        RunStatus.QUEUED,
        "schedule",
        T0,
        3,
        0,
        0,
    )
    assert (run.overrides, run.git_sha, run.cause) == ({"threads": 2}, "abc", "cron")
    assert run.queued_at is not None and [s.status for s in run.steps] == [StepStatus.QUEUED] * 2
    assert fire_rows(store) == [(jobs["a"], "cron:2026-03-08T07:30:00Z", result.run_id)]
    assert store.queue.fire_exists(jobs["a"], "cron:2026-03-08T07:30:00Z")
    assert not store.queue.fire_exists(jobs["b"], "cron:2026-03-08T07:30:00Z")


@pytest.mark.parametrize("coalesce", [True, False])
def test_duplicate_fire_returns_the_first_run_and_changes_nothing(
    store: Store, jobs: dict[str, int], coalesce: bool
) -> None:
    first = enq(store, jobs, trigger="schedule", fire_key="cron:1", coalesce=coalesce)
    before = store.runs.get_run(first.run_id)
    again = enq(store, jobs, trigger="schedule", fire_key="cron:1", commands=["dbt run"], priority=9, coalesce=coalesce)
    assert again == EnqueueResult(first.run_id, created=False, coalesced=False, duplicate_fire=True)
    assert store.runs.count_runs() == 1 and store.runs.get_run(first.run_id) == before
    assert fire_rows(store) == [(jobs["a"], "cron:1", first.run_id)]
    # The same key on another job is another fire.
    assert enq(store, jobs, "b", trigger="schedule", fire_key="cron:1").created


def test_duplicate_of_a_finished_fire_is_still_a_duplicate(store: Store, jobs: dict[str, int]) -> None:
    first = enq(store, jobs, trigger="schedule", fire_key="cron:1")
    store.runs.transition_run(first.run_id, RunStatus.SUCCESS)
    assert enq(store, jobs, trigger="schedule", fire_key="cron:1").duplicate_fire
    assert store.runs.count_runs() == 1


def test_triggers_coalesce_into_the_queued_run(store: Store, jobs: dict[str, int]) -> None:
    first = enq(store, jobs, trigger="schedule", fire_key="cron:1", priority=1, not_before=T0 + timedelta(hours=1))
    second = enq(store, jobs, trigger="schedule", fire_key="cron:2", priority=5, not_before=T0)
    third = enq(store, jobs, trigger="api")
    assert second == EnqueueResult(first.run_id, created=False, coalesced=True, duplicate_fire=False)
    assert third.coalesced and third.run_id == first.run_id
    run = store.runs.get_run(first.run_id)
    assert (run.coalesced, run.priority, run.not_before) == (2, 5, None)  # max priority, earliest start
    assert fire_rows(store) == [(jobs["a"], "cron:1", first.run_id), (jobs["a"], "cron:2", first.run_id)]
    assert store.runs.count_runs() == 1
    # A duplicate of a coalesced fire points at the run it was folded into.
    assert enq(store, jobs, trigger="schedule", fire_key="cron:2").run_id == first.run_id


def test_what_does_not_coalesce(store: Store, jobs: dict[str, int]) -> None:
    first = enq(store, jobs).run_id
    twin = enq(store, jobs, coalesce=False)  # asked not to
    assert twin.created
    assert enq(store, jobs, commands=["dbt run"]).created  # other commands
    assert enq(store, jobs, overrides={"threads": 1}).created  # other overrides
    assert enq(store, jobs, git_branch="feature").created  # other ref
    assert enq(store, jobs, "a", "dev").created  # other environment
    assert enq(store, jobs, "b").created  # other job
    assert store.runs.get_run(first).coalesced == 0
    assert store.queue.claim("w", "h").run_id == first  # no longer queued
    assert enq(store, jobs) == EnqueueResult(twin.run_id, False, True, False)  # folds into its twin


def test_retry_runs_never_coalesce(store: Store, jobs: dict[str, int]) -> None:
    original = enq(store, jobs).run_id
    retry = enq(store, jobs, trigger="retry", attempt=2, retry_of=original, fire_key=f"retry:{original}")
    assert retry.created and not retry.coalesced
    assert enq(store, jobs, trigger="retry", attempt=2, retry_of=original).created  # no fire_key: new run
    store.leases.request_cancel(original)
    # Nothing folds into a queued retry either.
    fresh = enq(store, jobs)
    assert fresh.created and fresh.run_id not in (original, retry.run_id)
    assert store.runs.get_run(retry.run_id).coalesced == 0
    assert enq(store, jobs, trigger="retry", fire_key=f"retry:{original}").duplicate_fire


def test_enqueue_validates_trigger_and_job(store: Store, jobs: dict[str, int]) -> None:
    from dockyard.errors import ConflictError, DockyardError

    with pytest.raises(DockyardError, match="Unknown run trigger"):
        enq(store, jobs, trigger="cron", fire_key="k")
    with pytest.raises(ConflictError):
        store.queue.enqueue(9999, "ghost", "prod", CMDS, trigger="manual", fire_key="k")
    assert store.runs.count_runs() == 0 and fire_rows(store) == []  # the failed transactions left nothing


# -- claim -----------------------------------------------------------------------------------
def test_claim_takes_priority_then_fifo(store: Store, jobs: dict[str, int]) -> None:
    low = enq(store, jobs, "a", coalesce=False).run_id
    high1 = enq(store, jobs, "b", priority=5).run_id
    high2 = enq(store, jobs, "c", priority=5).run_id
    low2 = enq(store, jobs, "a", commands=["dbt run"]).run_id
    order = [store.queue.claim("w", "h", overlap_jobs={jobs["a"]}) for _ in range(5)]
    assert [c.run_id for c in order[:4]] == [high1, high2, low, low2] and order[4] is None


def test_claim_returns_what_the_worker_needs(store: Store, jobs: dict[str, int]) -> None:
    run_id = enq(store, jobs, "c", overrides={"vars": {"x": 1}}, attempt=2).run_id
    claim = store.queue.claim("w1", "host1", now=T0)
    assert claim == Claim(
        run_id=run_id,
        epoch=1,
        job_id=jobs["c"],
        job_name="c",
        environment="dev",
        attempt=2,
        commands=CMDS,
        overrides={"vars": {"x": 1}},
    )
    run = store.runs.get_run(run_id)
    assert (run.status, run.worker_id, run.host, run.lease_epoch) == (RunStatus.STARTING, "w1", "host1", 1)
    assert run.claimed_at == run.heartbeat_at == T0
    assert store.queue.claim("w2", "host2") is None


def test_claim_respects_not_before(store: Store, jobs: dict[str, int]) -> None:
    later = enq(store, jobs, "a", not_before=T0 + timedelta(minutes=5)).run_id
    now_run = enq(store, jobs, "b", not_before=T0).run_id
    assert store.queue.claim("w", "h", now=T0 + timedelta(minutes=1)).run_id == now_run
    assert store.queue.claim("w", "h", now=T0 + timedelta(minutes=4, seconds=59)) is None
    assert store.queue.claim("w", "h", now=T0 + timedelta(minutes=5)).run_id == later


def test_one_active_run_per_job_unless_overlap(store: Store, jobs: dict[str, int]) -> None:
    a1 = enq(store, jobs, "a").run_id
    a2 = enq(store, jobs, "a", coalesce=False).run_id
    b1 = enq(store, jobs, "b").run_id
    assert store.queue.claim("w", "h").run_id == a1
    assert store.queue.claim("w", "h").run_id == b1  # a2 is blocked by a1 but does not block b1
    assert store.queue.claim("w", "h") is None
    assert store.queue.claim("w", "h", overlap_jobs={jobs["a"]}).run_id == a2


def test_runs_without_a_job_are_not_serialised(store: Store, jobs: dict[str, int]) -> None:
    ids = [store.runs.create_run(None, "adhoc", "prod", CMDS) for _ in range(2)]
    assert [store.queue.claim("w", "h").run_id for _ in range(2)] == ids


def test_global_and_environment_limits(store: Store, jobs: dict[str, int]) -> None:
    a, b = enq(store, jobs, "a").run_id, enq(store, jobs, "b").run_id
    c = enq(store, jobs, "c").run_id
    limits = {"env_limits": {"prod": 1}}
    assert store.queue.claim("w", "h", **limits).run_id == a
    assert store.queue.claim("w", "h", **limits).run_id == c  # b is blocked by prod's limit, c is not
    assert store.queue.claim("w", "h", **limits) is None
    assert store.queue.claim("w", "h", global_limit=2) is None
    assert store.queue.claim("w", "h", global_limit=3, env_limits={"prod": 2}).run_id == b
    assert store.queue.claim("w", "h", env_limits={"dev": 0}) is None


def test_claim_only_from_given_environments(store: Store, jobs: dict[str, int]) -> None:
    enq(store, jobs, "a")
    c = enq(store, jobs, "c").run_id
    assert store.queue.claim("w", "h", environments=[]) is None
    assert store.queue.claim("w", "h", environments=["dev", "qa"]).run_id == c
    assert store.queue.claim("w", "h", environments=["dev"]) is None


def test_epoch_grows_with_every_claim_of_a_run(store: Store, jobs: dict[str, int]) -> None:
    run_id = enq(store, jobs).run_id
    epochs = []
    for n in range(3):
        claim = store.queue.claim(f"w{n}", "h")
        assert claim.run_id == run_id
        epochs.append(claim.epoch)
        assert store.leases.requeue(run_id, claim.epoch)
    assert epochs == sorted(set(epochs)) and epochs[0] == 1
    assert store.runs.get_run(run_id).lease_epoch == epochs[-1] + 1


# -- schedule state and stats ----------------------------------------------------------------
def test_last_fire_only_moves_forward(store: Store, jobs: dict[str, int]) -> None:
    assert store.queue.last_fire(jobs["a"]) is None
    store.queue.set_last_fire(jobs["a"], T0)
    store.queue.set_last_fire(jobs["a"], T0 - timedelta(hours=1))
    assert store.queue.last_fire(jobs["a"]) == T0
    store.queue.set_last_fire(jobs["a"], T0 + timedelta(minutes=30))
    assert store.queue.last_fire(jobs["a"]) == T0 + timedelta(minutes=30)
    assert store.queue.last_fire(jobs["b"]) is None


def test_queue_stats(store: Store, jobs: dict[str, int]) -> None:
    empty = store.queue.queue_stats(now=T0)
    assert empty["by_status"] == {s.value: 0 for s in RunStatus}
    assert (empty["by_environment"], empty["oldest_queued_at"], empty["oldest_queued_age_s"]) == ({}, None, None)
    clock_now = clock.now
    try:
        clock.now = lambda: T0  # type: ignore[assignment]
        enq(store, jobs, "a")
        enq(store, jobs, "b", not_before=T0 + timedelta(hours=1))
        enq(store, jobs, "c")
    finally:
        clock.now = clock_now  # type: ignore[assignment]
    store.queue.claim("w", "h", now=T0)
    stats = store.queue.queue_stats(now=T0 + timedelta(seconds=90))
    assert stats["by_status"]["queued"] == 2 and stats["by_status"]["starting"] == 1
    assert stats["by_environment"] == {
        "dev": {"queued": 1, "starting": 0, "running": 0},
        "prod": {"queued": 1, "starting": 1, "running": 0},
    }
    assert (stats["delayed"], stats["oldest_queued_at"], stats["oldest_queued_age_s"]) == (1, T0, 90.0)


def test_claim_runs_read_committed_on_postgresql(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite claims under BEGIN IMMEDIATE")
    with store.db.write(isolation="READ COMMITTED") as conn:
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
    with store.db.read() as conn:  # reads keep their single snapshot
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
