"""The scheduler against a real store (SQLite and PostgreSQL) under an injected clock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from dockyard.domain import RunStatus
from dockyard.server.scheduler import Scheduler


def runs_of(app, job: str):
    return app.store.runs.list_runs(job=job, limit=None)


def test_each_fire_enqueues_exactly_one_run(server_app, clock_at):
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    first, second = Scheduler(server_app, "s1", now=clock), Scheduler(server_app, "s2", now=clock)
    first.tick(), second.tick()  # first sight: nothing from the past fires
    for _ in range(30 * 60 // 20):  # 30 minutes, ticking every 20 s, two schedulers
        clock.advance(seconds=20)
        first.tick()
        second.tick()
    runs = runs_of(server_app, "minutely")
    fired = sorted(r.scheduled_for for r in runs)
    assert len(fired) == len(set(fired)) == 30
    assert all(r.trigger == "schedule" and r.status == RunStatus.QUEUED for r in runs)
    assert fired[0].minute == 1 and fired[-1].minute == 30


def test_a_repeated_tick_after_a_crash_fires_nothing_twice(server_app, clock_at):
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(server_app, "s1", now=clock)
    scheduler.tick()
    clock.advance(minutes=3)
    assert len(scheduler.tick().enqueued) == 3
    # a restarted scheduler that lost its last_fire write sees the same fires again
    job_id = server_app.job_ids()["minutely"]
    with server_app.store.db.write() as conn:  # rewind the persisted last fire
        from dockyard.store.tables import schedule_state

        conn.execute(
            schedule_state.update()
            .where(schedule_state.c.job_id == job_id)
            .values(last_fire_at=clock() - timedelta(minutes=3))
        )
    server_app.store.leases.release_lease("scheduler", "s1")  # the crashed scheduler's lease expired
    report = Scheduler(server_app, "s2", now=clock).tick()
    assert report.enqueued == [] and report.duplicates >= 3
    assert len(runs_of(server_app, "minutely")) == 3


def test_a_second_trigger_coalesces_with_the_queued_run(server_app, clock_at):
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(server_app, "s1", now=clock)
    scheduler.tick()
    for _ in range(3):
        clock.advance(minutes=5)
        scheduler.tick()
    runs = runs_of(server_app, "serial")
    assert len(runs) == 1 and runs[0].status == RunStatus.QUEUED
    assert server_app.store.runs.get_run(runs[0].id).coalesced == 2
    manual = server_app.triggers.enqueue("serial", trigger="manual")
    assert manual.coalesced and manual.run_id == runs[0].id


def test_dst_spring_forward_night_in_new_york(server_app, clock_at):
    server_app.config.jobs = [j for j in server_app.config.jobs if j.name == "nightly-ny"]
    clock = clock_at(2026, 3, 7, 12)
    scheduler = Scheduler(server_app, "s1", now=clock)
    scheduler.tick()
    for _ in range(3 * 24 * 6):
        clock.advance(minutes=10)
        scheduler.tick()
    fired = [r.scheduled_for for r in runs_of(server_app, "nightly-ny")]
    # 02:30 EST on the 7th... the 8th has no 02:30: it fires at 03:30 EDT (07:30Z), once
    assert sorted(t.strftime("%d %H:%M") for t in fired) == ["08 07:30", "09 06:30", "10 06:30"]


def test_misfires_after_downtime(server_app, clock_at):
    clock = clock_at(2026, 6, 1, 0, 0, 30)
    scheduler = Scheduler(server_app, "s1", now=clock)
    scheduler.tick()
    clock.advance(hours=2)  # down for two hours
    scheduler.tick()
    # minutely has catchup: all -> 120 runs; serial (latest) -> 1
    assert len(runs_of(server_app, "minutely")) == 120
    assert len(runs_of(server_app, "serial")) == 1


def test_completion_triggers_any_and_all(server_app, clock_at):
    clock = clock_at(2026, 6, 1)
    scheduler = Scheduler(server_app, "s1", now=clock)
    scheduler.tick()  # baselines: history before this does not count

    def finish(job, status):
        res = server_app.triggers.enqueue(job, trigger="manual", coalesce=False)
        server_app.store.runs.transition_run(res.run_id, status, finished_at=clock.advance(seconds=1))
        return res.run_id

    a1 = finish("upstream-a", RunStatus.SUCCESS)
    clock.advance(seconds=5)
    scheduler.tick(), scheduler.tick()
    any_runs = runs_of(server_app, "after-any")
    assert len(any_runs) == 1 and any_runs[0].trigger == "job_completion"
    assert runs_of(server_app, "after-all") == []  # b has not run yet
    finish("upstream-b", RunStatus.ERROR)  # error counts for after-all (status: [success, error])
    clock.advance(seconds=5)
    scheduler.tick(), scheduler.tick()
    assert len(runs_of(server_app, "after-all")) == 1
    assert len(runs_of(server_app, "after-any")) == 1  # b is not upstream of after-any
    finish("upstream-a", RunStatus.CANCELLED)  # not a qualifying status for either
    clock.advance(seconds=5)
    scheduler.tick()
    assert len(runs_of(server_app, "after-any")) == 1 and len(runs_of(server_app, "after-all")) == 1
    assert a1


def test_lost_runs_are_reaped_and_retried_once(server_app, clock_at):
    import dockyard.clock as real_clock

    store = server_app.store
    res = server_app.triggers.enqueue("flaky", trigger="manual")
    claim = store.queue.claim("w1", "elsewhere")
    assert claim and claim.run_id == res.run_id
    later = real_clock.now() + timedelta(seconds=server_app.config.server.lost_after_seconds + 5)
    reports = [Scheduler(server_app, f"s{i}", now=lambda: later).tick() for i in range(2)]
    assert sum(len(r.reaped) for r in reports) == 1
    lost = store.runs.get_run(res.run_id)
    assert lost.status == RunStatus.ERROR and lost.reason == "worker_lost"
    retries = [r for r in runs_of(server_app, "flaky") if r.retry_of == res.run_id]
    assert len(retries) == 1 and retries[0].attempt == 2 and retries[0].trigger == "retry"
    assert Counter(r.status for r in runs_of(server_app, "flaky"))[RunStatus.QUEUED] == 1


def test_a_retry_lost_to_a_crash_is_queued_by_the_next_tick(server_app):
    """The reaper committed ``worker_lost`` and its process died before queueing the retry (or
    a worker died between failing a run and retrying it): a later tick queues it, once."""
    import dockyard.clock as real_clock

    store = server_app.store
    res = server_app.triggers.enqueue("flaky", trigger="manual")
    assert store.queue.claim("w1", "elsewhere").run_id == res.run_id
    later = real_clock.now() + timedelta(seconds=server_app.config.server.lost_after_seconds + 5)
    assert [r.run_id for r in store.leases.reap(server_app.config.server.lost_after_seconds, now=later)] == [res.run_id]
    # a failed foreground run (never claimed by a worker) is not retried: `dockyard run` never is
    record, _ = server_app.job("flaky")
    fg = store.runs.create_run(record.id, record.name, "dev", ["dbt seed"], trigger="manual")
    store.runs.transition_run(fg, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id="here:1")
    store.runs.transition_run(fg, RunStatus.ERROR, reason="worker_lost", finished_at=later)

    reports = [Scheduler(server_app, f"s{i}", now=lambda: later + timedelta(seconds=1)).tick() for i in range(2)]
    retries = [r for r in runs_of(server_app, "flaky") if r.retry_of is not None]
    assert [(r.retry_of, r.attempt, r.trigger) for r in retries] == [(res.run_id, 2, "retry")]
    assert sum(len(r.retried) for r in reports) == 1
