"""R1 (b): two schedulers and four workers, real processes on one PostgreSQL store, a warped
clock: every due cron fire becomes exactly one run, and every run succeeds.

The runs are `dbt debug --config-dir`: a real dbt invocation of ~0.3 s that writes nothing
into the project, so that four workers on two cores keep up with five jobs firing every 0.6 s.

Until aa38f43 the jobs ran `dbt deps`: five jobs with `allow_overlap` firing every 0.6
(warped) s, four worker slots running them at once in the one project folder, and `dbt deps`
deletes and refills `dbt_packages`, so two at once deleted each other's files now and then
(2 runs of 510 `error`, `FileNotFoundError: 'dbt_packages'` in dbt's rmtree). Such steps now
take turns on the project lock (docs/server.md, *Overlapping runs of one project*;
tests/runner/test_overlap.py); this test keeps the faster command, which writes into neither
the project nor a shared target folder (each run's dbt has its own), so nothing in it depends
on the interleaving of the runs."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from dockyard.schedule import fire_times_between
from dockyard.store.tables import schedule_state

from .conftest import QUICK, assert_no_duplicate_runs, wait_for

JOBS = 5
SPEED = 100  # warped seconds per real second: 100 minutes of fires in 60 s
FIRING_S = 62  # real seconds the schedulers run
EXPECTED_MIN = 500


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(400)
def test_two_schedulers_four_workers_each_fire_once(pg_cluster):
    c = pg_cluster
    c.configure(
        [
            {
                "name": f"tick{i}",
                "environment": "dev",
                "schedule": {"cron": "* * * * *"},
                "commands": [QUICK],
                "allow_overlap": True,
                "catchup": "all",
            }
            for i in range(JOBS)
        ],
        # heartbeats are real seconds, lease ages warped ones: 3600 warped s = 36 real s
        server={"heartbeat_seconds": 1, "lost_after_seconds": 3600},
    )
    c.cli("deploy")  # migrate and sync once, before the processes race to do it
    c.warp("2026-01-05T00:00:30Z", SPEED)
    workers = [c.start("worker", name=f"worker-{n}") for n in range(4)]
    schedulers = [c.start("scheduler", name=f"scheduler-{n}") for n in range(2)]
    # the firing time counts from the first fire: starting the processes takes seconds of
    # real time (warped minutes) under load, which must not eat into the fires counted below
    wait_for(c.cron_fires, 60, "the first fire", interval=0.1)
    time.sleep(FIRING_S)
    for proc in schedulers:
        assert proc.running, c.diagnostics()
        c.stop(proc)
    assert all(w.running for w in workers), c.diagnostics()
    # the workers drain the queue
    wait_for(c.all_final, 200, "every run to end", interval=1)
    for proc in workers:
        assert c.stop(proc) == 0, proc.text()[-3000:]

    fired = c.cron_fires()
    all_runs = c.all_runs()
    assert len(fired) >= EXPECTED_MIN, f"only {len(fired)} fires in {FIRING_S} s at x{SPEED}"
    # one run per fire, one fire per (job, time)
    assert len(fired) == len({(f.job_id, f.scheduled_for) for f in fired}) == len(all_runs)
    assert {f.run_id for f in fired} == {r.id for r in all_runs}
    assert_no_duplicate_runs(c)
    assert Counter(r.status.value for r in all_runs) == {"success": len(all_runs)}, [
        (r.id, r.status.value, r.reason) for r in all_runs if r.status.value != "success"
    ]
    # no due fire is missing: per job, every minute from its first fire to the last time the
    # schedulers looked (schedule_state.last_fire_at) fired
    with c.store.engine.connect() as conn:
        last_seen = dict(conn.execute(select(schedule_state.c.job_id, schedule_state.c.last_fire_at)).all())
    by_job = defaultdict(list)
    for f in fired:
        by_job[f.job_id].append(f.scheduled_for)
    assert len(by_job) == JOBS
    for job_id, times in by_job.items():
        first = min(times)
        expected = fire_times_between("* * * * *", "UTC", first - timedelta(seconds=1), last_seen[job_id])
        assert sorted(times) == expected, f"job {job_id}: fires missing or extra"
        assert all(r.scheduled_for is not None and r.trigger == "schedule" for r in all_runs)
