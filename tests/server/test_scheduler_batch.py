"""Cron fires of many jobs in batches (``Scheduler._fire_crons``, ``Store.queue.enqueue_fires``), on
real stores: a bounded number of statements and transactions per tick, exactly one run per
job and fire with two schedulers racing on one batch, a crash between two batches.

Speed itself is measured by ``bench/scheduler_fires.py`` (docs/performance.md), never here."""

from __future__ import annotations

import math
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import event, select

from dockyard.app import App
from dockyard.domain import RunStatus
from dockyard.server.scheduler import BATCH, Scheduler
from dockyard.store.tables import fires, schedule_state

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
JOBS = BATCH + 50  # two batches


def many_jobs_app(shop: Path, url: str | None, n: int = JOBS, **job) -> App:
    config = shop / "dockyard.yml"
    doc = yaml.safe_load(config.read_text())
    doc["jobs"] = [
        {
            "name": f"every-{i:04d}",
            "environment": "dev",
            "schedule": {"cron": "* * * * *"},
            "commands": ["dbt parse"],
            **job,
        }
        for i in range(n)
    ]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    app = App.open(config, url)
    app.sync()
    return app


@pytest.fixture(params=BACKENDS)
def store_url(request):
    return request.getfixturevalue("pg_database_factory")() if request.param == "postgresql" else None


def cron_runs(app: App) -> list:
    return [r for r in app.store.runs.list_runs(limit=None) if r.trigger == "schedule"]


def test_a_tick_of_many_due_jobs_takes_a_bounded_number_of_statements(shop, clock_at):
    app = many_jobs_app(shop, None)
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(app, "s1", now=clock)
    scheduler.tick()  # first sight
    statements, transactions = [], []
    event.listen(app.store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    event.listen(app.store.engine, "begin", lambda conn: transactions.append(1))
    clock.advance(minutes=1)
    report = scheduler.tick()
    assert len(report.enqueued) == JOBS
    batches = math.ceil(JOBS / BATCH)
    # O(jobs / BATCH): a few statements per batch, plus the tick's own reads (lease, jobs,
    # schedule states, reaper, lost retries). One fire at a time took 8 statements per job.
    # (+12: the observability duties read their queues once a tick: notifications, monitors,
    # the digest, the warehouse history; independent of the number of jobs)
    assert len(statements) <= 22 + 8 * batches, f"{len(statements)} statements for {JOBS} jobs"
    # (+1: a duty paced by the real clock, not the test's, may fall due inside this tick on a
    # loaded machine: seen once in CI with 11 for 250 jobs)
    assert len(transactions) <= 9 + batches, f"{len(transactions)} transactions for {JOBS} jobs"
    runs = cron_runs(app)
    assert len(runs) == JOBS and {r.job for r in runs} == {f"every-{i:04d}" for i in range(JOBS)}
    assert {r.scheduled_for for r in runs} == {datetime(2026, 6, 1, 0, 1, tzinfo=UTC)}
    app.close()


def test_two_schedulers_racing_on_one_batch_fire_each_job_once(shop, store_url, clock_at):
    app = many_jobs_app(shop, store_url, allow_overlap=True)  # one run per fire, none folded
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    # on SQLite the lease keeps a second scheduler out; one holder lets both in, as when a
    # tick outlives its lease
    first = Scheduler(app, "s1", now=clock)
    first.tick()
    rival_app = App.open(shop / "dockyard.yml", store_url)
    rival = Scheduler(rival_app, "s1", now=clock)
    reports = []
    read = rival_app.store.queue.last_fires

    def read_then_lose_the_race(job_ids):
        states = read(job_ids)  # the rival has read the schedule states...
        reports.append(first.tick())  # ...when the first scheduler fires every job
        return states

    rival_app.store.queue.last_fires = read_then_lose_the_race
    for _ in range(2):
        clock.advance(minutes=1)
        late = rival.tick()
        assert len(reports[-1].enqueued) == JOBS
        assert late.enqueued == [] and late.duplicates == JOBS  # its whole batch had fired
    runs = cron_runs(app)
    assert Counter(r.job for r in runs) == {f"every-{i:04d}": 2 for i in range(JOBS)}
    assert len({(r.job, r.scheduled_for) for r in runs}) == len(runs)
    with app.store.engine.connect() as conn:
        linked = conn.execute(select(fires.c.run_id).where(fires.c.fire_key.like("cron:%"))).scalars().all()
    assert sorted(linked) == sorted(r.id for r in runs)
    rival_app.close()
    app.close()


class Crashed(Exception):
    pass


def test_a_crash_between_two_batches_loses_and_doubles_nothing(shop, monkeypatch, clock_at):
    app = many_jobs_app(shop, None)
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    Scheduler(app, "s1", now=clock).tick()
    clock.advance(minutes=1)

    def crash(signum, frame):
        raise Crashed

    previous = signal.signal(signal.SIGUSR1, crash)
    try:  # dockyard.crash with a signal whose handler raises: the tick stops where a kill would
        monkeypatch.setenv("DOCKYARD_CRASH_AT", "run_inserted")
        monkeypatch.setenv("DOCKYARD_CRASH_SIGNAL", "SIGUSR1")
        with pytest.raises(Crashed):
            Scheduler(app, "s1", now=clock).tick()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        monkeypatch.delenv("DOCKYARD_CRASH_AT")
    first_batch = cron_runs(app)
    assert len(first_batch) == BATCH  # the first batch committed, fires, runs and states together
    with app.store.engine.connect() as conn:
        moved = (
            conn.execute(select(schedule_state.c.job_id).where(schedule_state.c.last_fire_at >= clock()))
            .scalars()
            .all()
        )
    assert sorted(moved) == sorted(r.job_id for r in first_batch)
    # the restarted scheduler (its lease expired) fires the rest, the first batch not again
    app.store.leases.release_lease("scheduler", "s1")
    clock.advance(seconds=5)
    report = Scheduler(app, "s2", now=clock).tick()
    assert len(report.enqueued) == JOBS - BATCH and report.duplicates == 0
    runs = cron_runs(app)
    assert Counter(r.job for r in runs) == {f"every-{i:04d}": 1 for i in range(JOBS)}
    app.close()


def test_catching_up_folds_fires_into_one_run_unless_overlap_is_allowed(shop, store_url, clock_at):
    app = many_jobs_app(shop, store_url, n=3, catchup="all")
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(app, "s1", now=clock)
    scheduler.tick()
    clock.advance(minutes=3)  # three due fires per job in one tick
    report = scheduler.tick()
    runs = cron_runs(app)
    assert len(report.enqueued) == len(runs) == 3  # one run per job, two fires folded in
    assert all(app.store.runs.get_run(r.id).coalesced == 2 for r in runs)
    clock.advance(minutes=1)  # the next fire folds into the still-queued run
    assert scheduler.tick().enqueued == []
    assert [app.store.runs.get_run(r.id).coalesced for r in cron_runs(app)] == [3, 3, 3]
    with app.store.engine.connect() as conn:
        per_run = Counter(conn.execute(select(fires.c.run_id).where(fires.c.fire_key.like("cron:%"))).scalars())
    assert sorted(per_run.values()) == [4, 4, 4] and set(per_run) == {r.id for r in runs}
    app.close()


def test_overlapping_jobs_get_one_run_per_fire(shop, store_url, clock_at):
    app = many_jobs_app(shop, store_url, n=3, catchup="all", allow_overlap=True)
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(app, "s1", now=clock)
    scheduler.tick()
    clock.advance(minutes=3)
    report = scheduler.tick()
    runs = cron_runs(app)
    assert len(report.enqueued) == len(runs) == 9
    assert sorted(Counter((r.job, r.scheduled_for) for r in runs).values()) == [1] * 9
    assert {r.scheduled_for.minute for r in runs} == {1, 2, 3}
    app.close()


def test_completion_triggers_of_many_jobs_read_the_store_a_bounded_number_of_times(shop, clock_at):
    config = shop / "dockyard.yml"
    doc = yaml.safe_load(config.read_text())
    doc["jobs"] = [{"name": "upstream", "environment": "dev", "commands": ["dbt parse"]}] + [
        {
            "name": f"after-{i:04d}",
            "environment": "dev",
            "commands": ["dbt parse"],
            "triggers": {"after": {"jobs": ["upstream"], "when": "any" if i % 2 else "all"}},
        }
        for i in range(JOBS)
    ]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    app = App.open(config, None)
    app.sync()
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(app, "s1", now=clock)
    scheduler.tick()  # first sight: baselines
    statements: list[str] = []
    event.listen(app.store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    clock.advance(seconds=5)
    assert scheduler.tick().enqueued == []
    # nothing finished: a few reads for all the jobs, not a few per job
    assert len(statements) <= 32, f"{len(statements)} statements for {JOBS} triggered jobs"  # +12: see above
    run_id = app.triggers.enqueue("upstream", trigger="manual").run_id
    claim = app.store.queue.claim("w", "host")
    clock.advance(seconds=5)
    app.store.runs.transition_run(claim.run_id, RunStatus.SUCCESS, epoch=claim.epoch, finished_at=clock())
    statements.clear()
    clock.advance(seconds=5)
    report = scheduler.tick()
    assert len(report.enqueued) == JOBS
    # each fire is its own enqueue, but the job list is not read again for every one of them
    job_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM jobs" in s]
    assert len(job_reads) <= 2, f"the jobs were listed {len(job_reads)} times for {JOBS} fires"
    runs = [r for r in app.store.runs.list_runs(limit=None) if r.trigger == "job_completion"]
    assert sorted(r.job for r in runs) == [f"after-{i:04d}" for i in range(JOBS)]
    assert run_id == claim.run_id
    clock.advance(seconds=5)
    assert scheduler.tick().enqueued == []  # each upstream run fires each trigger once
    app.close()
