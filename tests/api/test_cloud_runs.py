"""dbt Cloud v2 run routes (R1–R6) against the field expectations of specs/dbt-cloud-api.md."""

from __future__ import annotations

import json

import pytest
from tests.api.conftest import DAILY, job_id, seed_run

from dockyard.domain import RunStatus

V2 = "/api/v2/accounts/1"
RUN_KEYS = {  # §4.2: every key, always present
    "id",
    "trigger_id",
    "account_id",
    "environment_id",
    "project_id",
    "job_definition_id",
    "job_id",
    "status",
    "status_humanized",
    "status_message",
    "dbt_version",
    "git_branch",
    "git_sha",
    "in_progress",
    "is_complete",
    "is_success",
    "is_error",
    "is_cancelled",
    "is_running",
    "href",
    "created_at",
    "updated_at",
    "dequeued_at",
    "started_at",
    "finished_at",
    "should_start_at",
    "last_checked_at",
    "last_heartbeat_at",
    "duration",
    "queued_duration",
    "run_duration",
    "duration_humanized",
    "queued_duration_humanized",
    "run_duration_humanized",
    "created_at_humanized",
    "finished_at_humanized",
    "artifacts_saved",
    "artifact_s3_path",
    "has_docs_generated",
    "has_sources_generated",
    "notifications_sent",
    "blocked_by",
    "deferring_run_id",
    "owner_thread_id",
    "executed_by_thread_id",
    "scribe_enabled",
    "used_repo_cache",
    "retrying_run_id",
    "can_retry",
    "retry_not_supported_reason",
    "trigger",
    "job",
    "environment",
    "run_steps",
}
TRIGGER_KEYS = {
    "id",
    "cause",
    "cause_humanized",
    "cause_category",
    "job_definition_id",
    "git_branch",
    "git_sha",
    "azure_pull_request_id",
    "github_pull_request_id",
    "gitlab_merge_request_id",
    "non_native_pull_request_id",
    "schema_override",
    "dbt_version_override",
    "threads_override",
    "target_name_override",
    "generate_docs_override",
    "timeout_seconds_override",
    "steps_override",
    "created_at",
}
HUMAN = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}


def check_envelope(body: dict, code: int = 200) -> None:
    assert body["status"]["code"] == code
    assert body["status"]["is_success"] is (code < 300)
    assert isinstance(body["status"]["user_message"], str)


def check_run(data: dict) -> None:
    assert RUN_KEYS <= set(data), RUN_KEYS - set(data)
    assert data["status"] in HUMAN and data["status_humanized"] == HUMAN[data["status"]]
    for key in ("id", "trigger_id", "account_id", "environment_id", "project_id", "job_definition_id", "job_id"):
        assert isinstance(data[key], int), key
    assert isinstance(data["href"], str) and data["href"].endswith(f"/runs/{data['id']}/")
    assert data["in_progress"] is (data["status"] in (1, 2, 3))
    assert data["is_complete"] is (data["status"] in (10, 20, 30))
    for key in ("duration", "queued_duration", "run_duration"):
        assert len(data[key].split(":")) == 3


# -- R1 trigger --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        "json-nulls",
        "empty",
        "json-null",
        "form",
        "no-slash",
        "double-slash",
        "bearer",
        "lowercase-scheme",
        "dbt-cloud-cli",
    ],
)
def test_trigger_accepts_every_body_and_path_form(client, app, tokens, how):
    j = job_id(app)
    url, kw = f"{V2}/jobs/{j}/run/", {}
    headers = {}
    if how == "json-nulls":  # Airflow
        kw["content"] = json.dumps(
            {"cause": "Triggered via Apache Airflow", "steps_override": None, "schema_override": None}
        )
        headers["Content-Type"] = "application/json"
    elif how == "empty":  # scripts, old Dagster
        headers["Content-Type"] = "application/json"
    elif how == "json-null":  # Dagster legacy
        kw["content"] = "null"
        headers["Content-Type"] = "application/json"
    elif how == "form":  # the gist linked from dbt's docs
        kw["data"] = {"cause": "form", "git_branch": "main", "schema_override": "dbt_pr_1"}
    elif how == "no-slash":  # Dagster cloud_v2
        url = f"{V2}/jobs/{j}/run"
        kw["json"] = {"cause": "Triggered by dagster.", "steps_override": ["dbt parse"]}
    elif how == "double-slash":  # DBT_URL with a trailing slash
        url = f"https://testserver//api/v2/accounts/1/jobs/{j}/run/"
        kw["json"] = {"cause": "script"}
    elif how == "bearer":  # Prefect, dbt-jobs-as-code
        headers.update(tokens.header("trigger", "Bearer"))
        kw["json"] = {"cause": "Triggered via Prefect", "threads_override": 2}
    elif how == "lowercase-scheme":
        headers.update({"Authorization": f"token {tokens.trigger}"})
    elif how == "dbt-cloud-cli":  # every field, nulls included, plus stray keys
        kw["json"] = {
            "cause": "cli",
            "git_sha": None,
            "git_branch": None,
            "azure_pull_request_id": None,
            "github_pull_request_id": None,
            "gitlab_merge_request_id": None,
            "schema_override": None,
            "dbt_version_override": None,
            "threads_override": None,
            "target_name_override": None,
            "generate_docs_override": None,
            "timeout_seconds_override": None,
            "steps_override": None,
            "account_id": 1,
            "job_id": j,
        }
    response = client.post(url, headers=headers, follow_redirects=False, **kw)
    assert response.status_code == 200, response.text
    body = response.json()
    check_envelope(body)
    data = body["data"]
    check_run(data)
    assert data["status"] == 1 and data["job_definition_id"] == j
    assert data["project_id"] == 1  # Prefect reads it (KeyError otherwise)
    assert data["job"]["triggers"]["schedule"] is True  # Dagster legacy reads job.triggers.schedule
    assert data["trigger"]["cause"]
    assert TRIGGER_KEYS <= set(data["trigger"])


def test_trigger_overrides_change_that_run_only(client, app):
    j = job_id(app)
    body = {
        "cause": "override test",
        "git_sha": "abc1234",
        "git_branch": "feature/x",
        "schema_override": "pr_42",
        "threads_override": 3,
        "target_name_override": "dev",
        "steps_override": ["dbt seed", "dbt run --select m"],
        "timeout_seconds_override": 60,
        "generate_docs_override": True,
    }
    data = client.post(f"{V2}/jobs/{j}/run/", json=body).json()["data"]
    trigger = data["trigger"]
    for key, value in body.items():
        assert trigger[key] == value, key
    assert data["git_sha"] == "abc1234" and data["git_branch"] == "feature/x"
    run = app.store.runs.get_run(data["id"])
    assert [s.command for s in run.steps] == ["dbt seed", "dbt run --select m", "dbt docs generate"]
    assert run.overrides["threads_override"] == 3 and run.cause == "override test"
    job = client.get(f"{V2}/jobs/{j}/").json()["data"]
    assert job["execute_steps"][0] == "dbt seed" and job["settings"]["threads"] == 4  # the job is unchanged
    plain = client.post(f"{V2}/jobs/{j}/run/").json()["data"]
    assert app.store.runs.get_run(plain["id"]).overrides is None
    assert plain["trigger"]["cause"] == "Triggered via API"


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"steps_override": ["rm -rf /"]}, "Invalid dbt commands"),
        ({"steps_override": ["dbt run; rm -rf /"]}, "Invalid dbt commands"),
        ({"threads_override": 0}, "threads_override"),
        ({"threads_override": "many"}, "threads_override"),
        ({"schema_override": "x; drop table y"}, "schema_override"),
        ({"timeout_seconds_override": -1}, "timeout_seconds_override"),
        ({"dbt_version_override": "0.19.0"}, "not installed"),
    ],
)
def test_trigger_rejects_bad_overrides_with_400(client, app, body, needle):
    response = client.post(f"{V2}/jobs/{job_id(app)}/run/", json=body)
    assert response.status_code == 400
    assert needle in response.json()["status"]["user_message"]
    assert response.json()["data"] is None
    assert app.store.runs.count_runs() == 0


def test_trigger_unknown_job_and_account_are_404(client):
    for url in (f"{V2}/jobs/999/run/", "/api/v2/accounts/2/jobs/1/run/"):
        response = client.post(url, json={"cause": "x"})
        assert response.status_code == 404
        assert response.json()["data"] is None and response.json()["status"]["user_message"]


# -- R2 run detail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        [("include_related", "trigger"), ("include_related", "job"), ("include_related", "run_steps")],
        [("include_related", "trigger,job,run_steps")],
        [("include_related", "['trigger', 'job', 'run_steps']")],
        [("include_related", '["trigger","job","run_steps"]')],
        [("include_related", "run_steps,job"), ("include_related", "trigger")],
    ],
)
def test_run_detail_include_related_in_every_encoding(client, app, params):
    run_id = seed_run(app)
    data = client.get(f"{V2}/runs/{run_id}/", params=params).json()["data"]
    check_run(data)
    assert data["job"]["execute_steps"] and data["trigger"]["cause"] == "seeded" and data["run_steps"]


def test_run_detail_without_include_has_every_key_null_or_empty(client, app):
    run_id = seed_run(app)
    for url in (
        f"{V2}/runs/{run_id}/",
        f"{V2}/runs/{run_id}",
        f"https://testserver//api/v2/accounts/1//runs/{run_id}/",
    ):
        response = client.get(url, params={"include_related": "[]"}, follow_redirects=False)
        assert response.status_code == 200
        data = response.json()["data"]
        check_run(data)
        assert data["trigger"] is None and data["job"] is None and data["run_steps"] == []
        assert data["status"] == 10 and data["is_success"] and data["artifacts_saved"]
        assert data["finished_at"] and " " in data["finished_at"]  # v2's space-separated timestamps


@pytest.mark.parametrize(
    "status, failed",
    [
        (RunStatus.SUCCESS, None),
        (RunStatus.ERROR, 4),
        (RunStatus.CANCELLED, 2),
        (RunStatus.RUNNING, None),
        (RunStatus.QUEUED, None),
    ],
)
def test_run_steps_layout(client, app, status, failed):
    run_id = seed_run(app, status=status, failed_step=failed)
    data = client.get(f"{V2}/runs/{run_id}/", params={"include_related": "run_steps,debug_logs"}).json()["data"]
    steps = data["run_steps"]
    commands = app.job(DAILY)[1].all_commands
    assert [s["index"] for s in steps] == list(range(1, len(commands) + 4))
    assert steps[0]["name"] == "Clone Git Repository"
    assert steps[1]["name"].startswith("Create Profile from Connection ") and steps[1]["name"].endswith(" ")
    assert steps[2]["name"] == "Invoke dbt with `dbt deps`"
    for step, command in zip(steps[3:], commands, strict=True):
        assert step["name"] == f"Invoke dbt with `{command}`"
        assert step["name"].partition("`")[2].partition("`")[0] == command  # how Prefect reads it
    for step in steps:
        assert step["status"] in HUMAN
        assert step["status_humanized"] in ("Queued", "Running", "Success", "Error", "Cancelled", "Skipped")
        assert isinstance(step["logs"], str) and isinstance(step["debug_logs"], str)
    if status == RunStatus.ERROR:
        assert steps[failed + 2]["status"] == 20 and steps[failed + 2]["status_humanized"] == "Error"
        assert all(s["status_humanized"] == "Skipped" for s in steps[failed + 3 :])
        assert "`dbt run`" in data["status_message"]
        assert "1 of 2 OK created sql view model" in steps[failed + 2]["debug_logs"]
    if status == RunStatus.SUCCESS:
        assert all(s["status_humanized"] == "Success" for s in steps)
    if status == RunStatus.CANCELLED:
        assert data["status_message"] == "Cancelled by user." and data["is_cancelled"]


def test_unknown_run_is_404_envelope(client):
    response = client.get(f"{V2}/runs/424242/")
    assert response.status_code == 404 and response.json()["data"] is None
    assert "424242" in response.json()["status"]["user_message"]


# -- R3/R4 artifacts -------------------------------------------------------------------------


def test_artifacts_list_and_download_per_step(client, app):
    run_id = seed_run(app)
    names = client.get(f"{V2}/runs/{run_id}/artifacts/").json()["data"]
    assert names == sorted(names) and "run_results.json" in names and "catalog.json" in names
    assert all(isinstance(n, str) for n in names)
    assert client.get(f"{V2}/runs/{run_id}/artifacts", params={"step": 1}).json()["data"] == []  # clone step
    assert client.get(f"{V2}/runs/{run_id}/artifacts/", params={"step": 4}).json()["data"] == [
        "manifest.json",
        "run_results.json",
    ]
    response = client.get(f"{V2}/runs/{run_id}/artifacts/run_results.json")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["metadata"]["env"]["DBT_CLOUD_RUN_ID"] == str(run_id)  # raw, not wrapped
    assert response.json()["metadata"]["step"] == len(app.job(DAILY)[1].all_commands)  # the last step's
    assert (
        client.get(f"{V2}/runs/{run_id}/artifacts/run_results.json", params={"step": 5}).json()["metadata"]["step"] == 2
    )
    html = client.get(f"{V2}/runs/{run_id}/artifacts/index.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/plain")


def test_missing_artifact_and_step_are_404(client, app):
    run_id = seed_run(app)
    for url, params in (
        (f"{V2}/runs/{run_id}/artifacts/sources.json", {}),
        (f"{V2}/runs/{run_id}/artifacts/run_results.json", {"step": 99}),
        (f"{V2}/runs/{run_id}/artifacts/", {"step": 99}),
    ):
        response = client.get(url, params=params)
        assert response.status_code == 404 and response.json()["data"] is None


# -- R5 cancel ---------------------------------------------------------------------------------


def test_cancel_queued_run(client, app):
    run_id = seed_run(app, status=RunStatus.QUEUED)
    for kw in ({"content": "null", "headers": {"Content-Type": "application/json"}}, {}):
        response = client.post(f"{V2}/runs/{run_id}/cancel/", **kw)
        assert response.status_code == 200
        data = response.json()["data"]
        check_run(data)
        assert data["status"] == 30 and data["status_humanized"] == "Cancelled" and data["is_cancelled"]
        assert data["is_complete"] and data["finished_at"] and data["status_message"] == "Cancelled by user."


def test_cancel_running_and_finished_runs(client, app):
    running = seed_run(app, status=RunStatus.RUNNING)
    assert client.post(f"{V2}/runs/{running}/cancel").json()["data"]["status"] == 3
    assert app.store.runs.get_run(running).cancel_requested_at is not None
    done = seed_run(app)
    assert client.post(f"{V2}/runs/{done}/cancel/").json()["data"]["status"] == 10


# -- R6 list runs --------------------------------------------------------------------------------


def test_list_runs_filters_and_pagination(client, app):
    j = job_id(app)
    ok, failed = seed_run(app), seed_run(app, status=RunStatus.ERROR, failed_step=4)
    queued, ci = seed_run(app, status=RunStatus.QUEUED), seed_run(app, job="CI")

    def ids(**params):
        body = client.get(f"{V2}/runs/", params=params).json()
        extra = body["extra"]
        assert isinstance(extra["filters"]["limit"], int) and isinstance(extra["filters"]["offset"], int)
        assert extra["pagination"]["count"] == len(body["data"])
        return [r["id"] for r in body["data"]], extra

    assert ids()[0] == [ci, queued, failed, ok]
    assert ids(job_definition_id=j)[0] == [queued, failed, ok]
    assert ids(job_definition_id=j, status__in="[1, 2, 3]", order_by="-created_at")[0] == [queued]  # Airflow
    assert ids(job_definition_id=j, status__in="[1,2,3]", limit=1)[0] == [queued]  # Dagster
    assert ids(status=20)[0] == [failed]
    got, extra = ids(job_definition_id=j, order_by="-created_at", limit=1)
    assert got == [queued] and extra["filters"]["limit"] == 1 and extra["pagination"]["total_count"] == 3
    got, extra = ids(limit=500, offset=1)
    assert extra["filters"]["limit"] == 100 and extra["filters"]["offset"] == 1 and got == [queued, failed, ok]
    assert ids(order_by="id")[0] == [ok, failed, queued, ci]
    assert ids(project_id__in="[2]")[0] == []
    assert ids(project_id=1, environment_id=app.store.jobs.list_environments()[0]["id"])[0] in ([ci], [])
    finished = ids(
        finished_at__range='["2000-01-01T00:00:00+00:00", "2999-01-01T00:00:00+00:00"]', order_by="finished_at"
    )[0]
    assert queued not in finished and set(finished) == {ok, failed, ci}
    assert ids(created_at__range="['2000-01-01 00:00','2001-01-01 00:00']")[0] == []
    assert ids(include_related="['trigger','job']", order_by="-id", limit=1, job_definition_id=j)[0] == [queued]


def test_list_runs_bad_parameters_are_400(client):
    for params in ({"status": 7}, {"order_by": "password"}, {"limit": "x"}, {"finished_at__range": "[x, y]"}):
        response = client.get(f"{V2}/runs/", params=params)
        assert response.status_code == 400, params
        assert response.json()["data"] is None
