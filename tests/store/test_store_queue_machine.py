"""A Hypothesis state machine over the queue: enqueue, claim, finish, crash, cancel, requeue.

After every step the limits hold (global, per environment, one active run per job unless
the job may overlap), the store's active runs are exactly the ones the model says workers
own, and each claim took the run the rules say it should (priority, then FIFO, skipping
blocked candidates). Deterministic (``derandomize``) and single-process; the same machine
runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete

from dockyard.domain import RunStatus
from dockyard.errors import FencedError
from dockyard.store import Store
from dockyard.store.tables import metadata

T0 = datetime(2026, 3, 8, tzinfo=UTC)
JOBS = {"a": "prod", "b": "prod", "c": "prod", "d": "dev", "e": "dev"}
WORKERS = [f"w{n}" for n in range(4)]
ACTIVE = ("starting", "running")
SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def reset(store: Store) -> None:
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


def test_queue_state_machine(store: Store) -> None:
    seen: Counter[str] = Counter()  # what the examples exercised (asserted at the end)
    event = seen.update

    class QueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            reset(store)
            store.jobs.sync_environments([{"name": e} for e in set(JOBS.values())])
            self.job_ids = store.jobs.sync_jobs([{"name": n, "environment": e} for n, e in JOBS.items()])
            self.now = T0
            self.limits: dict = {}
            self.owned: dict[int, tuple[str, int]] = {}  # run id -> (worker, epoch)
            self.queued: set[int] = set()
            self.final: set[int] = set()
            self.cancel_requested: set[int] = set()
            self.last_epoch: dict[int, int] = {}
            self.lost: list[tuple[int, int]] = []  # leases taken away from their worker

        @initialize(
            global_limit=st.none() | st.integers(1, 3),
            prod_limit=st.none() | st.integers(1, 2),
            dev_limit=st.none() | st.integers(1, 2),
            overlap=st.sets(st.sampled_from(sorted(JOBS))),
        )
        def choose_limits(self, global_limit, prod_limit, dev_limit, overlap) -> None:
            env_limits = {env: n for env, n in (("prod", prod_limit), ("dev", dev_limit)) if n is not None}
            self.limits = {
                "global_limit": global_limit,
                "env_limits": env_limits,
                "overlap_jobs": {self.job_ids[n] for n in overlap},
            }

        @rule(
            job=st.sampled_from(sorted(JOBS)),
            coalesce=st.booleans(),
            priority=st.integers(0, 2),
            retry=st.booleans(),
            delay=st.sampled_from([None, None, -5, 5]),
            fire=st.none() | st.integers(0, 5),
        )
        def enqueue(self, job, coalesce, priority, retry, delay, fire) -> None:
            result = store.queue.enqueue(
                self.job_ids[job],
                job,
                JOBS[job],
                ["dbt build"],
                trigger="retry" if retry else "manual",
                priority=priority,
                coalesce=coalesce,
                not_before=None if delay is None else self.now + timedelta(seconds=delay),
                fire_key=None if fire is None else f"k{fire}",
            )
            assert sum((result.created, result.coalesced, result.duplicate_fire)) == 1
            if result.created:
                self.queued.add(result.run_id)
            elif result.coalesced:
                assert coalesce and not retry and result.run_id in self.queued
            else:
                assert fire is not None and result.run_id in self.queued | self.final | set(self.owned)

        @precondition(lambda self: self.queued)
        @rule(workers=st.lists(st.sampled_from(WORKERS), min_size=1, max_size=3))
        def claim(self, workers) -> None:
            """One to three claims in a row (so the limits are tested with several active runs)."""
            for worker in workers:
                expected = self.expected_claim()
                claim = store.queue.claim(worker, "host", now=self.now, **self.limits)
                assert (claim and claim.run_id) == expected
                event(["claim: " + ("run" if claim else "blocked")])
                if claim is None:
                    return
                assert claim.epoch > self.last_epoch.get(claim.run_id, 0)
                self.last_epoch[claim.run_id] = claim.epoch
                self.queued.remove(claim.run_id)
                self.owned[claim.run_id] = (worker, claim.epoch)

        def expected_claim(self) -> int | None:
            runs = store.runs.list_runs(status=["queued", *ACTIVE], limit=None)
            active = [r for r in runs if r.status.value in ACTIVE]
            per_env = Counter(r.environment for r in active)
            busy = {r.job_id for r in active} - self.limits["overlap_jobs"]
            if self.limits["global_limit"] is not None and len(active) >= self.limits["global_limit"]:
                return None
            for run in sorted((r for r in runs if r.status is RunStatus.QUEUED), key=lambda r: (-r.priority, r.id)):
                if run.not_before and run.not_before > self.now:
                    continue
                if per_env[run.environment] >= self.limits["env_limits"].get(run.environment, 99):
                    continue
                if run.job_id in busy:
                    continue
                return run.id
            return None

        def take_owned(self, data, what: str) -> tuple[int, str, int]:
            run_id = data.draw(st.sampled_from(sorted(self.owned)))
            worker, epoch = self.owned.pop(run_id)
            self.lost.append((run_id, epoch))
            event([what])
            return run_id, worker, epoch

        @precondition(lambda self: self.owned)
        @rule(data=st.data(), status=st.sampled_from([RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED]))
        def finish(self, data, status) -> None:
            """The owner ends its run."""
            run_id, _, epoch = self.take_owned(data, "finish")
            store.runs.start_step(run_id, 1, self.now, epoch=epoch)
            assert store.runs.transition_run(
                run_id, status, epoch=epoch, expected=[RunStatus.STARTING, RunStatus.RUNNING]
            )
            self.final.add(run_id)

        @precondition(lambda self: self.owned)
        @rule(data=st.data())
        def crash(self, data) -> None:
            """The owner dies: its heartbeat goes stale and the reaper ends the run, once."""
            run_id, worker, epoch = self.take_owned(data, "crash")
            store.runs.set_run_fields(run_id, heartbeat_at=self.now - timedelta(hours=1))
            reaped = store.leases.reap(60, now=self.now)
            assert [(r.run_id, r.worker_id, r.epoch) for r in reaped] == [(run_id, worker, epoch)]
            assert store.leases.reap(60, now=self.now) == []
            self.final.add(run_id)

        @precondition(lambda self: self.owned)
        @rule(data=st.data())
        def requeue(self, data) -> None:
            """The owner shuts down gracefully and hands the run back (cancelled if a cancel is pending)."""
            run_id, _, epoch = self.take_owned(data, "requeue")
            assert store.leases.requeue(run_id, epoch, now=self.now)
            if run_id in self.cancel_requested:
                assert store.runs.get_run(run_id).status is RunStatus.CANCELLED
                self.final.add(run_id)
            else:
                self.queued.add(run_id)

        @precondition(lambda self: self.owned)
        @rule(data=st.data())
        def cancel(self, data) -> None:
            """Cancel an active run (mostly), the oldest queued one or the oldest final one."""
            run_id = data.draw(st.sampled_from(sorted(self.owned) + sorted(self.queued)[:1] + sorted(self.final)[:1]))
            outcome = store.leases.request_cancel(run_id, now=self.now)
            event([f"cancel: {outcome}"])
            if run_id in self.queued:
                assert outcome == "cancelled"
                self.queued.remove(run_id)
                self.final.add(run_id)
            elif run_id in self.owned:
                assert outcome == "requested"
                self.cancel_requested.add(run_id)
            else:
                assert outcome == "final"

        @rule()
        def tick(self) -> None:
            self.now += timedelta(seconds=3)
            for worker in sorted({w for w, _ in self.owned.values()}):
                mine = [(run_id, epoch) for run_id, (w, epoch) in self.owned.items() if w == worker]
                beat = store.leases.heartbeat_runs(worker, mine, now=self.now)
                assert beat.lost == []
                assert set(beat.cancel_requested) == {r for r, _ in mine if r in self.cancel_requested}

        @precondition(lambda self: self.lost)
        @rule(data=st.data())
        def stale_worker_writes(self, data) -> None:
            run_id, epoch = data.draw(st.sampled_from(self.lost))
            with pytest.raises(FencedError):
                store.runs.start_step(run_id, 1, self.now, epoch=epoch)
            assert store.leases.heartbeat_runs("any", [(run_id, epoch)], now=self.now).lost == [run_id]
            event(["stale write fenced"])

        @invariant()
        def limits_hold(self) -> None:
            if not self.limits:
                return
            live = store.runs.list_runs(status=["queued", *ACTIVE], limit=None)
            active = [r for r in live if r.status.value in ACTIVE]
            assert {r.id for r in live if r.status is RunStatus.QUEUED} == self.queued
            assert {r.id: (r.worker_id, r.lease_epoch) for r in active} == self.owned
            if self.limits["global_limit"] is not None:
                assert len(active) <= self.limits["global_limit"]
            for env, n in Counter(r.environment for r in active).items():
                assert n <= self.limits["env_limits"].get(env, 99)
            for job_id, n in Counter(r.job_id for r in active).items():
                assert n <= 1 or job_id in self.limits["overlap_jobs"]

    run_state_machine_as_test(QueueMachine, settings=SETTINGS)
    # Not a degenerate run: claims were made and refused, and owned runs were settled every way.
    assert all(seen[what] > 0 for what in ("claim: run", "claim: blocked", "crash", "requeue", "stale write fenced")), (
        seen
    )
