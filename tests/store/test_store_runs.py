"""Runs and steps: creation, queries, compare-and-set transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dockyard import clock
from dockyard.domain import RunStatus, StepStatus
from dockyard.errors import ConflictError, DockyardError, NotFoundError
from dockyard.store import Store, StoredRun

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def job_ids(store: Store) -> dict[str, int]:
    return store.jobs.sync_jobs([{"name": n, "environment": "prod", "definition": {}} for n in ("a", "b")])


def new_run(store: Store, job_ids: dict[str, int], name: str = "a", **kw) -> int:
    return store.runs.create_run(job_ids[name], name, "prod", ["dbt seed", "dbt build"], **kw)


def test_create_and_get_run(store: Store, job_ids: dict[str, int]) -> None:
    run_id = new_run(
        store,
        job_ids,
        trigger="schedule",
        cause="cron 0 * * * *",
        scheduled_for=T0,
        priority=5,
        overrides={"threads": 2},
        git_sha="abc123",
        git_branch="main",
    )
    run = store.runs.get_run(run_id)
    assert isinstance(run, StoredRun)
    assert (run.id, run.job_id, run.job, run.environment) == (run_id, job_ids["a"], "a", "prod")
    assert run.status is RunStatus.QUEUED and run.status_code == 1
    assert (run.trigger, run.cause, run.scheduled_for, run.attempt, run.retry_of) == (
        "schedule",
        "cron 0 * * * *",
        T0,
        1,
        None,
    )
    assert (run.priority, run.overrides, run.git_sha, run.git_branch, run.lease_epoch) == (
        5,
        {"threads": 2},
        "abc123",
        "main",
        0,
    )
    assert run.created_at is not None and run.created_at.tzinfo is not None
    assert run.queued_at == run.created_at
    assert [(s.index, s.command, s.status) for s in run.steps] == [
        (1, "dbt seed", StepStatus.QUEUED),
        (2, "dbt build", StepStatus.QUEUED),
    ]
    assert run.nodes == [] and run.artifacts == [] and run.has_warnings is False


def test_retry_links_to_the_original_run(store: Store, job_ids: dict[str, int]) -> None:
    first = new_run(store, job_ids)
    retry = new_run(store, job_ids, trigger="retry", attempt=2, retry_of=first)
    assert (store.runs.get_run(retry).retry_of, store.runs.get_run(retry).attempt) == (first, 2)


def test_run_without_job_and_unknown_references(store: Store, job_ids: dict[str, int]) -> None:
    adhoc = store.runs.create_run(None, "adhoc", "dev", [], status=RunStatus.RUNNING, trigger="api")
    run = store.runs.get_run(adhoc)
    assert run.job_id is None and run.steps == [] and run.status is RunStatus.RUNNING
    with pytest.raises(ConflictError):
        store.runs.create_run(12345, "ghost", "prod", ["dbt run"])
    with pytest.raises(DockyardError, match="Unknown run trigger"):
        new_run(store, job_ids, trigger="cron")


def test_list_and_count_runs_with_filters(store: Store, job_ids: dict[str, int]) -> None:
    ids = [new_run(store, job_ids, "a" if i % 2 == 0 else "b") for i in range(6)]
    store.runs.transition_run(ids[0], RunStatus.SUCCESS)
    store.runs.transition_run(ids[1], RunStatus.ERROR)
    store.runs.transition_run(ids[2], RunStatus.SUCCESS)

    assert [r.id for r in store.runs.list_runs()] == ids[::-1]
    assert [r.id for r in store.runs.list_runs(order="asc", limit=2)] == ids[:2]
    assert [r.id for r in store.runs.list_runs(limit=2, offset=2)] == [ids[3], ids[2]]
    assert [r.id for r in store.runs.list_runs(job=job_ids["a"])] == [ids[4], ids[2], ids[0]]
    assert [r.id for r in store.runs.list_runs(job="b")] == [ids[5], ids[3], ids[1]]
    assert [r.id for r in store.runs.list_runs(status="success")] == [ids[2], ids[0]]
    assert [r.id for r in store.runs.list_runs(status=[RunStatus.ERROR, "queued"], job="b")] == [ids[5], ids[3], ids[1]]
    assert all(len(r.steps) == 2 and r.nodes == [] for r in store.runs.list_runs())
    assert store.runs.count_runs() == 6
    assert store.runs.count_runs(job="a", status="success") == 2
    assert store.runs.count_runs(status=["queued"]) == 3
    assert store.runs.list_runs(job="nobody") == [] and store.runs.count_runs(job=999) == 0
    with pytest.raises(DockyardError, match="Unknown run status"):
        store.runs.list_runs(status="done")
    with pytest.raises(DockyardError):
        store.runs.list_runs(order="sideways")


def test_latest_run(store: Store, job_ids: dict[str, int]) -> None:
    assert store.runs.latest_run(job_ids["a"]) is None
    first, second = new_run(store, job_ids), new_run(store, job_ids)
    store.runs.transition_run(first, RunStatus.SUCCESS)
    assert store.runs.latest_run(job_ids["a"]).id == second
    assert store.runs.latest_run(job_ids["a"], status=RunStatus.SUCCESS).id == first
    assert store.runs.latest_run(job_ids["b"]) is None


def test_transition_is_compare_and_set(store: Store, job_ids: dict[str, int]) -> None:
    run_id = new_run(store, job_ids)
    queued = {RunStatus.QUEUED}
    assert store.runs.transition_run(run_id, RunStatus.STARTING, expected=queued, worker_id="w1") is True
    # A second worker loses the race.
    assert store.runs.transition_run(run_id, RunStatus.STARTING, expected=queued, worker_id="w2") is False
    assert store.runs.get_run(run_id).worker_id == "w1"
    # Lease epoch must match when given.
    assert store.runs.transition_run(run_id, RunStatus.RUNNING, expected={RunStatus.STARTING}, epoch=7) is False
    assert (
        store.runs.transition_run(
            run_id, RunStatus.RUNNING, expected={RunStatus.STARTING}, epoch=0, started_at=T0, heartbeat_at=T0
        )
        is True
    )
    assert (
        store.runs.transition_run(
            run_id,
            RunStatus.SUCCESS,
            expected={RunStatus.RUNNING},
            finished_at=T0 + timedelta(seconds=90),
            has_warnings=True,
            reason="done",
            artifacts_dir="runs/1",
        )
        is True
    )
    run = store.runs.get_run(run_id)
    assert (run.status, run.status_code, run.reason, run.has_warnings) == (RunStatus.SUCCESS, 10, "done", True)
    assert (run.started_at, run.heartbeat_at, run.artifacts_dir, run.duration_s) == (T0, T0, "runs/1", 90.0)
    assert store.runs.transition_run(run_id, RunStatus.CANCELLED, expected=set()) is False
    assert store.runs.transition_run(999, RunStatus.RUNNING) is False
    with pytest.raises(TypeError, match="status_code"):
        store.runs.transition_run(run_id, RunStatus.ERROR, status_code=1)


def test_status_code_is_stored(store: Store, job_ids: dict[str, int]) -> None:
    run_id = new_run(store, job_ids)
    store.runs.transition_run(run_id, RunStatus.CANCELLED)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT status_code FROM runs WHERE id={run_id}").scalar() == 30


def test_set_run_fields(store: Store, job_ids: dict[str, int]) -> None:
    run_id = new_run(store, job_ids)
    store.runs.set_run_fields(run_id, artifacts_dir="x/1", lease_epoch=3, overrides={"vars": {"a": 1}})
    run = store.runs.get_run(run_id)
    assert (run.artifacts_dir, run.lease_epoch, run.overrides, run.status) == (
        "x/1",
        3,
        {"vars": {"a": 1}},
        RunStatus.QUEUED,
    )
    with pytest.raises(TypeError):
        store.runs.set_run_fields(run_id, status="success")
    with pytest.raises(NotFoundError):
        store.runs.set_run_fields(999, worker_id="w")


def test_steps_lifecycle(store: Store, job_ids: dict[str, int]) -> None:
    run_id = store.runs.create_run(job_ids["a"], "a", "prod", ["dbt deps", "dbt seed", "dbt run", "dbt test"])
    store.runs.start_step(run_id, 1, T0)
    store.runs.finish_step(run_id, 1, StepStatus.SUCCESS, 0, T0 + timedelta(seconds=1), log_path="s0.log")
    store.runs.start_step(run_id, 2, T0 + timedelta(seconds=2))
    store.runs.finish_step(run_id, 2, "error", 1, T0 + timedelta(seconds=3))
    store.runs.start_step(run_id, 3, T0 + timedelta(seconds=3))
    assert store.runs.skip_steps(run_id, 3, status=StepStatus.CANCELLED) == 2
    assert store.runs.skip_steps(run_id, 1) == 0  # finished steps are left alone
    steps = store.runs.get_run(run_id).steps
    assert [(s.status, s.exit_code) for s in steps] == [
        (StepStatus.SUCCESS, 0),
        (StepStatus.ERROR, 1),
        (StepStatus.CANCELLED, None),
        (StepStatus.CANCELLED, None),
    ]
    assert steps[0].started_at == T0 and steps[1].finished_at == T0 + timedelta(seconds=3)
    with pytest.raises(NotFoundError):
        store.runs.start_step(run_id, 9, T0)


def test_datetimes_are_utc_aware(store: Store, job_ids: dict[str, int]) -> None:
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2025, 6, 1, 9, 30, tzinfo=tokyo)
    naive = datetime(2025, 6, 1, 0, 30)  # taken as UTC
    run_id = new_run(store, job_ids, scheduled_for=local)
    store.runs.transition_run(run_id, RunStatus.RUNNING, started_at=naive)
    run = store.runs.get_run(run_id)
    assert run.scheduled_for == local and run.scheduled_for.utcoffset() == timedelta(0)
    assert run.scheduled_for.tzinfo is UTC
    assert run.started_at == naive.replace(tzinfo=UTC) and run.started_at.tzinfo is UTC
    assert abs(run.created_at - clock.now()) < timedelta(minutes=1)


def test_clock_is_used_for_timestamps(store: Store, job_ids: dict[str, int], monkeypatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: T0)
    run = store.runs.get_run(new_run(store, job_ids))
    assert run.created_at == run.queued_at == run.updated_at == T0


def test_missing_run_is_not_found(store: Store, job_ids: dict[str, int]) -> None:
    with pytest.raises(NotFoundError, match="Run 42 not found") as caught:
        store.runs.get_run(42)
    assert caught.value.hint == "no runs have been recorded yet"
    run_id = new_run(store, job_ids)
    with pytest.raises(NotFoundError) as caught:
        store.runs.get_run(run_id + 1)
    assert caught.value.hint == f"the newest run is {run_id}"
