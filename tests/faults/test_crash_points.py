"""R1 (a) and R2: the crash-point matrix (``dockyard.crash``).

A scheduler dies at ``tick_leased`` / ``run_inserted`` / ``tick_committed``, a worker slot at
``run_claimed`` / ``run_started`` / ``step_finished`` / ``run_finished``, by SIGKILL and by
SIGTERM (a handled signal: the process then stops the way SIGTERM stops it, gracefully), and
is restarted without the crash flag. Afterwards: exactly one run per due fire (or trigger),
every run final, a run lost mid-way reaped as ``worker_lost`` and retried (or requeued and
completed), no dbt process left behind. SQLite store.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.app import App
from dockyard.schedule import fire_times_between

from .conftest import assert_no_duplicate_runs, wait_for, worker_slots

SIGNALS = ["SIGKILL", "SIGTERM"]
WARP_START = datetime(2026, 1, 5, 0, 0, 30, tzinfo=UTC)
SPEED = 60  # one fire per real second


def _crash_env(point: str, sig: str) -> dict[str, str]:
    return {"DOCKYARD_CRASH_AT": point, "DOCKYARD_CRASH_SIGNAL": sig}


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", ["tick_leased", "run_inserted", "tick_committed"])
def test_scheduler_crash_point(cluster, point, sig):
    c = cluster
    c.configure(
        [
            {
                "name": "every",
                "environment": "dev",
                "schedule": {"cron": "* * * * *"},
                "commands": ["dbt deps"],
                "allow_overlap": True,
                "catchup": "all",
            }
        ],
        server={"heartbeat_seconds": 1, "lost_after_seconds": 600},
    )
    app = App.open(c.config, c.store_url)
    job_id = app.sync()["every"]
    # the schedule last fired two minutes before the crashing scheduler's first tick, so
    # that first tick has fires to enqueue when it dies
    app.store.queue.set_last_fire(job_id, WARP_START - timedelta(minutes=2, seconds=10))
    app.close()
    c.warp(WARP_START.isoformat(), SPEED)
    worker = c.start("worker")
    crashing = c.start("scheduler", env=_crash_env(point, sig), name="scheduler-crashing")
    code = crashing.popen.wait(30)  # it stops by itself at the crash point
    assert code == (-signal.SIGKILL if sig == "SIGKILL" else 0), crashing.text()[-3000:]
    if point != "tick_leased" or sig == "SIGTERM":
        assert c.cron_fires(), "the crashing scheduler fired nothing before it stopped"
    restarted = c.start("scheduler", name="scheduler-restarted")
    wait_for(lambda: len(c.cron_fires()) >= 6, 40, "fires after the restart")
    c.stop(restarted)
    wait_for(c.all_final, 60, "every run to end")
    c.stop(worker)

    fired = c.cron_fires()
    runs = c.all_runs()
    times = sorted(f.scheduled_for for f in fired)
    last = App.open(c.config, c.store_url).store.queue.last_fire(job_id)
    # every minute from the one after the seeded last fire up to the last tick fired once
    assert times == fire_times_between("* * * * *", "UTC", WARP_START - timedelta(minutes=2, seconds=10), last)
    assert len(runs) == len(fired) == len({r.scheduled_for for r in runs})
    assert_no_duplicate_runs(c)
    assert {r.status.value for r in runs} == {"success"}, [(r.id, r.status, r.reason) for r in runs]
    wait_for(lambda: not c.leftovers(), 10, "no process of the test left")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", ["run_claimed", "run_started", "step_finished", "run_finished"])
def test_worker_crash_point(cluster, point, sig):
    c = cluster
    c.configure(
        [
            {
                "name": "two-steps",
                "environment": "dev",
                "commands": ["dbt deps", "dbt deps"],
                "retries": {"max_attempts": 2, "backoff_seconds": 0},
            }
        ],
        server={"heartbeat_seconds": 0.5, "lost_after_seconds": 3},
    )
    app = App.open(c.config, c.store_url)
    app.sync()
    scheduler = c.start("scheduler")  # the reaper
    crashing = c.start("worker", env=_crash_env(point, sig), name="worker-crashing")
    slot = wait_for(lambda: worker_slots(crashing), 30, "the worker's slot")[0]
    root = app.triggers.enqueue("two-steps", trigger="manual").run_id
    # the slot kills itself (SIGKILL) or stops gracefully (SIGTERM); its parent would start a
    # new slot (with the crash flag) after a second: stop the whole worker before that
    wait_for(lambda: slot not in worker_slots(crashing), 60, f"the slot to stop at {point}", interval=0.05)
    c.kill(crashing)
    c.start("worker", name="worker-restarted")

    def settled():
        runs = c.all_runs()
        return runs if all(r.status.is_final for r in runs) and runs[-1].status.value == "success" else None

    runs = wait_for(settled, 60, "the run (or its retry) to succeed")
    c.stop(scheduler)
    assert [r.id for r in runs if r.retry_of is None] == [root], "one trigger, one run"
    assert_no_duplicate_runs(c)
    first = runs[0]
    if sig == "SIGKILL" and point != "run_finished":
        # lost mid-way: reaped, then retried once
        assert (first.status.value, first.reason) == ("error", "worker_lost")
        assert len(runs) == 2 and runs[1].retry_of == root and runs[1].attempt == 2
        assert runs[1].status.value == "success"
        expected_steps = 1 if point == "step_finished" else 2  # the retry skips the finished step
        assert len(runs[1].steps) == expected_steps
    else:
        # SIGTERM: the run was cancelled and requeued, then completed by the new worker; at
        # run_finished the run had already succeeded
        assert len(runs) == 1 and first.status.value == "success", [(r.id, r.status, r.reason) for r in runs]
    assert all(s.status.value == "success" for s in runs[-1].steps)
    for proc in list(c.procs):
        if proc.running:
            c.stop(proc)
    wait_for(lambda: not c.leftovers(), 10, "no process of the test left")
