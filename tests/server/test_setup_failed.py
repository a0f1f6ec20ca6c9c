"""Pre-dbt failures of a worker's run end it at once as ``setup_failed`` (issue 7, item 6 and
its kin): an environment removed from dockyard.yml while the run was queued, an invalid
dbt_project.yml, a profile without the environment's target. In-process worker, SQLite and
PostgreSQL; dbt is never started."""

from __future__ import annotations

from dockyard.domain import RunStatus, StepStatus
from dockyard.server.worker import Worker


def _run_once(app, job: str, environment: str = "dev"):
    job_id = app.job_ids()[job]
    run_id = app.store.queue.enqueue(
        job_id, job, environment, ["dbt parse", "dbt run"], trigger="manual", coalesce=False
    ).run_id
    assert Worker(app, worker_id="h:1:worker:t").run_once() == run_id
    return app.store.runs.get_run(run_id)


def _assert_setup_failed(app, run, *needles: str) -> None:
    assert (run.status, run.reason) == (RunStatus.ERROR, "setup_failed")
    assert [s.status for s in run.steps] == [StepStatus.ERROR, StepStatus.SKIPPED]
    log = app.runs.logs(run.id)
    for needle in needles:
        assert needle in log, log
    assert app.runs.maybe_retry(run.id) is None


def test_an_environment_removed_while_queued(server_app):
    run = _run_once(server_app, "flaky", environment="gone")
    _assert_setup_failed(server_app, run, "environment 'gone', which is no longer in dockyard.yml")


def test_an_invalid_dbt_project_yml(server_app):
    project_file = server_app.project.project_dir / "dbt_project.yml"
    project_file.write_text("name: shop\nprofile: [unclosed\n")
    server_app.__dict__.pop("project", None)  # as a worker that starts now would see it
    run = _run_once(server_app, "flaky")
    _assert_setup_failed(server_app, run, "invalid YAML", "dbt_project.yml")


def test_a_target_missing_from_the_profile(server_app):
    env = server_app.config.environments["dev"]
    env.target = "nope"
    run = _run_once(server_app, "flaky")
    _assert_setup_failed(server_app, run, "target 'nope' of environment 'dev' is not in profile")
