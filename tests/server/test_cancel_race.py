"""An acknowledged cancel wins (issue 7, item 14), on SQLite and PostgreSQL.

Once ``cancel`` answered ``requested`` (the flag is committed), the run ends ``cancelled``,
even when its last step finished before anything read the flag: the run's final write reads
the flag in the same UPDATE. A run that had already ended is answered truthfully (an error
naming its status); the reaper honours a pending cancel too, so no retry follows it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from dockyard import clock
from dockyard.domain import RunStatus, StepStatus
from dockyard.errors import ConflictError


class CancelAfterLastStep:
    """An observer that requests the cancel in the window: the last step's final event is
    stored, the run is not finished yet (nothing polls the flag any more)."""

    def __init__(self, app, steps: int):
        self.app, self.steps = app, steps
        self.answer: str | None = None

    def step_started(self, index, command):
        pass

    def nodes(self, index, nodes):
        pass

    def log(self, index, line):
        pass

    def step_finished(self, index, status):
        if index == self.steps:
            [run] = self.app.store.runs.list_runs(status=["running"], limit=1)
            self.answer = self.app.runs.cancel(run.id)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_cancel_acknowledged_after_the_last_step_wins(server_app):
    observer = CancelAfterLastStep(server_app, steps=1)
    run = server_app.run_job("upstream-a", observer=observer)  # one step: dbt parse
    assert observer.answer == "requested"
    assert [s.status for s in run.steps] == [StepStatus.SUCCESS]  # dbt's work did finish
    assert (run.status, run.reason) == (RunStatus.CANCELLED, "cancelled")
    assert server_app.runs.maybe_retry(run.id) is None
    # now final: a second cancel says so, with the status
    with pytest.raises(ConflictError, match=f"run {run.id} already ended with status cancelled"):
        server_app.runs.cancel(run.id)
    assert server_app.runs.cancel(run.id, final_ok=True) == "final"


def test_finish_run_reads_the_flag_in_its_own_write(server_app):
    store = server_app.store
    job_id = server_app.job_ids()["flaky"]
    store.queue.enqueue(job_id, "flaky", "dev", ["dbt seed", "dbt run"], trigger="manual")
    claim = store.queue.claim("w1", "h1")
    store.runs.transition_run(claim.run_id, RunStatus.RUNNING, epoch=claim.epoch, started_at=clock.now())
    for index in (1, 2):
        store.runs.start_step(claim.run_id, index, clock.now(), epoch=claim.epoch)
        store.runs.finish_step(claim.run_id, index, StepStatus.SUCCESS, 0, clock.now(), epoch=claim.epoch)
    assert server_app.runs.cancel(claim.run_id) == "requested"
    assert server_app.execution.finish(claim.run_id, RunStatus.SUCCESS, None, False, epoch=claim.epoch)
    run = store.runs.get_run(claim.run_id)
    assert (run.status, run.status_code, run.reason) == (RunStatus.CANCELLED, 30, "cancelled")
    # the other order: the run ended first, the cancel is refused with the truth
    store.queue.enqueue(job_id, "flaky", "dev", ["dbt seed"], trigger="manual", coalesce=False)
    other = store.queue.claim("w1", "h1")
    assert store.leases.finish_run(other.run_id, RunStatus.SUCCESS, None, epoch=other.epoch) is RunStatus.SUCCESS
    with pytest.raises(ConflictError, match="already ended with status success") as caught:
        server_app.runs.cancel(other.run_id)
    assert caught.value.status == 409
    assert store.runs.get_run(other.run_id).status is RunStatus.SUCCESS


def test_a_reaped_run_with_a_pending_cancel_ends_cancelled_and_is_not_retried(server_app):
    """The worker died after the cancel was acknowledged: not ``worker_lost`` (retried as
    transient), but ``cancelled``."""
    store = server_app.store
    job_id = server_app.job_ids()["flaky"]  # retries: 3 attempts on transient failures
    store.queue.enqueue(job_id, "flaky", "dev", ["dbt seed", "dbt run"], trigger="manual")
    claim = store.queue.claim("w1", "h1")
    store.runs.start_step(claim.run_id, 1, clock.now(), epoch=claim.epoch)
    assert server_app.runs.cancel(claim.run_id) == "requested"
    [reaped] = store.leases.reap(30, now=clock.now() + timedelta(minutes=5))
    assert reaped.run_id == claim.run_id and reaped.cancel_requested
    run = store.runs.get_run(claim.run_id)
    assert (run.status, run.reason) == (RunStatus.CANCELLED, "cancelled")
    assert [s.status for s in run.steps] == [StepStatus.CANCELLED, StepStatus.SKIPPED]
    assert server_app.runs.maybe_retry(claim.run_id) is None
    assert [r.id for r in store.runs.list_runs(job=job_id, limit=None)] == [claim.run_id]


def _race(app, claim) -> tuple[str, RunStatus]:
    """Request the cancel and write the run's end at the same moment, from two threads."""
    import threading

    barrier, answer = threading.Barrier(2), {}

    def cancel():
        barrier.wait()
        try:
            answer["cancel"] = app.runs.cancel(claim.run_id)
        except ConflictError:
            answer["cancel"] = "final"

    def finish():
        barrier.wait()
        app.execution.finish(claim.run_id, RunStatus.SUCCESS, None, False, epoch=claim.epoch)

    threads = [threading.Thread(target=cancel), threading.Thread(target=finish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answer["cancel"], app.store.runs.get_run(claim.run_id).status


def test_concurrent_cancel_and_finish_have_one_truthful_outcome(server_app):
    """The two writes raced, many times: ``requested`` always ends ``cancelled``, ``final``
    always leaves ``success``."""
    store = server_app.store
    job_id = server_app.job_ids()["flaky"]
    for _ in range(20):
        store.queue.enqueue(job_id, "flaky", "dev", ["dbt seed"], trigger="manual", coalesce=False)
        claim = store.queue.claim("w1", "h1")
        store.runs.transition_run(claim.run_id, RunStatus.RUNNING, epoch=claim.epoch)
        assert _race(server_app, claim) in {("requested", RunStatus.CANCELLED), ("final", RunStatus.SUCCESS)}
