"""The queue under real concurrency: several OS processes (spawned) on one store.

Every claimer checks the limits from its own connection right after each claim; the
parent checks that every run was claimed exactly once and every fire made one run.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

from dockyard.domain import RunStatus
from dockyard.store import Store

PROCS = 8
RUNS = 200
JOBS = 20
GLOBAL_LIMIT = 6
ENV_LIMITS = {"prod": 4, "dev": 3}
FIRE_KEYS = 40


def real_url(store: Store) -> str:
    return store.db._url.render_as_string(hide_password=False)


def claimer(url: str, n: int) -> tuple[list[int], list[str]]:
    """Claim and finish runs until the queue is empty; returns (claimed ids, limit violations)."""
    claimed: list[int] = []
    violations: list[str] = []
    with Store(url) as store:
        idle_since = None
        while True:
            claim = store.queue.claim(f"w{n}", f"host{n}", global_limit=GLOBAL_LIMIT, env_limits=ENV_LIMITS)
            if claim is None:
                if store.runs.count_runs(status="queued") == 0:
                    return claimed, violations
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 60:
                    raise AssertionError(f"w{n} starved for 60 s")
                time.sleep(0.002)
                continue
            idle_since = None
            claimed.append(claim.run_id)
            active = store.runs.list_runs(status=["starting", "running"], limit=None)
            per_env = {env: sum(r.environment == env for r in active) for env in ENV_LIMITS}
            per_job = {job: sum(r.job_id == job for r in active) for job in {r.job_id for r in active}}
            if (
                len(active) > GLOBAL_LIMIT
                or any(per_env[e] > ENV_LIMITS[e] for e in ENV_LIMITS)
                or any(v > 1 for v in per_job.values())
            ):
                violations.append(f"w{n}: {len(active)} active, {per_env}, {per_job}")
            assert store.runs.transition_run(claim.run_id, RunStatus.RUNNING, epoch=claim.epoch)
            store.runs.start_step(claim.run_id, 1, store.runs.get_run(claim.run_id).claimed_at, epoch=claim.epoch)
            beat = store.leases.heartbeat_runs(f"w{n}", [(claim.run_id, claim.epoch)])
            assert beat.lost == [] and beat.cancel_requested == []
            assert store.runs.transition_run(claim.run_id, RunStatus.SUCCESS, epoch=claim.epoch)


def scheduler(url: str, job_ids: list[int]) -> int:
    """Fire the same keys as every other scheduler; returns how many runs this one created."""
    created = 0
    with Store(url) as store:
        for i in range(FIRE_KEYS):
            for job_id in job_ids:
                result = store.queue.enqueue(
                    job_id,
                    f"j{job_id}",
                    "prod",
                    ["dbt build"],
                    trigger="schedule",
                    fire_key=f"cron:{i}",
                    coalesce=False,
                )
                created += result.created
                assert result.created != result.duplicate_fire
    return created


def pool():
    return multiprocessing.get_context("spawn").Pool(PROCS)


@pytest.mark.timeout(300)
def test_every_run_is_claimed_exactly_once_by_concurrent_processes(store: Store) -> None:
    envs = ["prod", "dev"]
    store.jobs.sync_environments([{"name": e} for e in envs])
    jobs = store.jobs.sync_jobs([{"name": f"j{i}", "environment": envs[i % 2]} for i in range(JOBS)])
    names = list(jobs)
    ids = [
        store.queue.enqueue(
            jobs[names[i % JOBS]],
            names[i % JOBS],
            envs[(i % JOBS) % 2],
            ["dbt build"],
            trigger="manual",
            coalesce=False,
        ).run_id
        for i in range(RUNS)
    ]
    with pool() as workers:
        results = workers.starmap(claimer, [(real_url(store), n) for n in range(PROCS)])
    claimed = [run_id for ids_, _ in results for run_id in ids_]
    assert [v for _, vs in results for v in vs] == []
    assert len(claimed) == len(set(claimed)) == RUNS and set(claimed) == set(ids)
    assert sum(1 for ids_, _ in results if ids_) > 1, "only one process ever won a claim"
    runs = store.runs.list_runs(limit=None)
    assert {r.status for r in runs} == {RunStatus.SUCCESS} and {r.lease_epoch for r in runs} == {1}


@pytest.mark.timeout(300)
def test_racing_schedulers_fire_each_key_once(store: Store) -> None:
    jobs = store.jobs.sync_jobs([{"name": f"j{i}", "environment": "prod"} for i in range(3)])
    job_ids = list(jobs.values())
    with multiprocessing.get_context("spawn").Pool(4) as schedulers:
        created = schedulers.starmap(scheduler, [(real_url(store), job_ids)] * 4)
    assert sum(created) == store.runs.count_runs() == FIRE_KEYS * len(job_ids)
    for job_id in job_ids:
        assert all(store.queue.fire_exists(job_id, f"cron:{i}") for i in range(FIRE_KEYS))
