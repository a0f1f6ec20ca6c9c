"""dbt Cloud v2/v3 job, account, project and environment routes (R7–R12, R14–R17, R19, R25),
and the error envelope of every failure."""

from __future__ import annotations

import pytest
from tests.api.conftest import DAILY, job_id, seed_run

from dockyard.domain import RunStatus

V2, V3 = "/api/v2/accounts/1", "/api/v3/accounts/1"
# dbt-jobs-as-code's JobDefinition needs these from every job it reads (§6.3)
JOB_REQUIRED = {
    "id",
    "account_id",
    "project_id",
    "environment_id",
    "name",
    "settings",
    "run_generate_sources",
    "execute_steps",
    "generate_docs",
    "triggers",
    "schedule",
    "state",
    "job_type",
    "execution",
    "dbt_version",
    "deferring_job_definition_id",
    "deferring_environment_id",
    "description",
    "run_lint",
    "errors_on_lint_failure",
    "run_compare_changes",
    "compare_changes_flags",
    "cost_optimization_features",
    "triggers_on_draft_pr",
    "job_completion_trigger_condition",
    "generate_sources",
    "created_at",
    "updated_at",
    "cron_humanized",
    "next_run",
}
JOBS_AS_CODE = {  # what dbt-jobs-as-code sync sends (the full JobDefinition)
    "id": None,
    "account_id": 1,
    "project_id": 1,
    "environment_id": None,
    "dbt_version": None,
    "name": "My Job 1 [[job1]]",
    "description": "managed by dbt-jobs-as-code",
    "execute_steps": ["dbt run --select model1+", "dbt test"],
    "execution": {"timeout_seconds": 0},
    "generate_docs": False,
    "run_generate_sources": True,
    "schedule": {
        "cron": "0 */2 * * *",
        "date": {"type": "custom_cron", "cron": "0 */2 * * *"},
        "time": {"type": "every_hour", "interval": 1},
    },
    "settings": {"target_name": "production", "threads": 4},
    "state": 1,
    "deferring_job_definition_id": None,
    "deferring_environment_id": None,
    "triggers": {"git_provider_webhook": False, "github_webhook": False, "schedule": True, "on_merge": False},
    "run_lint": False,
    "errors_on_lint_failure": True,
    "run_compare_changes": False,
    "compare_changes_flags": "--select state:modified",
    "job_type": "scheduled",
    "cost_optimization_features": ["state_aware_orchestration"],
    "triggers_on_draft_pr": False,
    "job_completion_trigger_condition": None,
}


def env_id(app, name: str = "dev") -> int:
    return next(e["id"] for e in app.store.jobs.list_environments() if e["name"] == name)


def test_get_job_exactly_200_in_both_forms(client, app):
    j = job_id(app)
    for url in (f"{V2}/jobs/{j}", f"{V2}/jobs/{j}/"):
        response = client.get(url, params={"order_by": "id"}, follow_redirects=False)
        assert response.status_code == 200
        data = response.json()["data"]
        assert JOB_REQUIRED <= set(data), JOB_REQUIRED - set(data)
        assert "custom_environment_variables" not in data
        assert data["id"] == j and data["name"] == DAILY and data["state"] == 1
        assert data["execute_steps"][:2] == ["dbt seed", "dbt source freshness"]
        assert data["settings"] == {"threads": 4, "target_name": "prod"}
        assert data["schedule"]["cron"] == "0 2 * * *" and data["triggers"]["schedule"] is True
    ci = client.get(f"{V2}/jobs/{job_id(app, 'CI')}/").json()["data"]
    assert ci["triggers"]["schedule"] is False and ci["schedule"]["cron"]  # always a valid cron
    assert ci["job_type"] == "ci" and isinstance(ci["settings"]["threads"], int)


def test_list_jobs_paginates_like_airflow_and_jobs_as_code(client, app):
    body = client.get(f"{V2}/jobs/", params={"limit": 1}).json()
    assert body["extra"]["filters"]["limit"] == 1 and body["extra"]["filters"]["offset"] == 0
    assert body["extra"]["pagination"] == {"count": 1, "total_count": 2}
    second = client.get(f"{V2}/jobs", params={"limit": 1, "offset": 1}).json()["data"]
    assert {body["data"][0]["name"], second[0]["name"]} == {DAILY, "CI"}
    assert [j["name"] for j in client.get(f"{V2}/jobs/", params={"name__icontains": "daily"}).json()["data"]] == [DAILY]
    assert (
        client.get(f"{V2}/jobs/", params={"project_id__in": "[1,2]"}).json()["extra"]["pagination"]["total_count"] == 2
    )
    assert client.get(f"{V2}/jobs/", params={"project_id": 7}).json()["data"] == []
    prod = client.get(f"{V2}/jobs/", params={"environment_id": env_id(app, "prod")}).json()["data"]
    assert [j["name"] for j in prod] == [DAILY]
    assert client.get(f"{V2}/jobs/", params={"limit": 1000}).json()["extra"]["filters"]["limit"] == 100


def test_create_update_delete_api_job(client, app):
    body = dict(
        JOBS_AS_CODE,
        environment_id=env_id(app),
        created_at="1999-01-01",
        is_system=True,
        custom_environment_variables=[{"DBT_X": "1"}],
        account={"id": 9},
    )
    created = client.post(f"{V2}/jobs/", json=body)
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    j = data["id"]
    assert isinstance(j, int) and data["state"] == 1 and data["account_id"] == 1
    assert data["name"] == "My Job 1 [[job1]]" and data["is_system"] is False
    assert data["created_at"] != "1999-01-01" and "custom_environment_variables" not in data
    for key in (
        "execute_steps",
        "settings",
        "schedule",
        "triggers",
        "execution",
        "cost_optimization_features",
        "run_generate_sources",
        "description",
        "job_type",
    ):
        assert data[key] == JOBS_AS_CODE[key], key  # verbatim: dbt-jobs-as-code plans no diff
    assert client.get(f"{V2}/jobs/{j}/").json()["data"] == data
    stored = app.store.jobs.get_job(j).definition
    assert "is_system" not in stored["cloud"] and "created_at" not in stored["cloud"]
    # Dagster legacy: GET, merge, POST the whole object back (read-only keys included)
    merged = dict(data, triggers=dict(data["triggers"], schedule=False), next_run="x", id=999, state=2)
    updated = client.post(f"{V2}/jobs/{j}/", json=merged)
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"]["triggers"]["schedule"] is False and updated.json()["data"]["id"] == j
    assert app.store.jobs.get_job(j).cron is None and app.store.jobs.get_job(j).active
    # survives a sync of dockyard.yml (the scheduler re-syncs on every change)
    app.sync()
    assert j in [v["id"] for v in client.get(f"{V2}/jobs/").json()["data"]]
    # runnable: a trigger queues it with its own commands
    run = client.post(f"{V2}/jobs/{j}/run/", json={"cause": "api job"}).json()["data"]
    assert [s.command for s in app.store.runs.get_run(run["id"]).steps][0] == "dbt source freshness"
    deleted = client.delete(f"{V2}/jobs/{j}/")
    assert deleted.status_code == 200 and deleted.json()["data"]["state"] == 2
    assert deleted.json()["data"]["name"] == "My Job 1 [[job1]]"
    assert client.get(f"{V2}/jobs/{j}/").status_code == 404
    assert client.delete(f"{V2}/jobs/{j}").status_code == 404  # Dagster treats 404 as already gone
    assert j not in [v["id"] for v in client.get(f"{V2}/jobs/").json()["data"]]
    again = client.post(f"{V2}/jobs", json=dict(JOBS_AS_CODE, environment_id=env_id(app)))
    assert again.status_code == 201 and again.json()["data"]["id"] != j  # the name is free again


def test_create_job_with_dagster_minimal_body_gets_defaults(client, app):
    body = {
        "account_id": 1,
        "environment_id": env_id(app),
        "project_id": 1,
        "name": "DAGSTER_ADHOC_JOB__1__1",
        "description": "A job that runs dbt commands",
        "job_type": "other",
    }
    data = client.post(f"{V2}/jobs", json=body).json()["data"]
    assert data["execute_steps"] == ["dbt build"] and data["settings"]["threads"] == 4
    assert data["triggers"]["schedule"] is False and data["schedule"]["cron"] == "0 * * * *"
    assert data["generate_docs"] is False and data["state"] == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ({"name": "x"}, 400),  # no environment
        ({"name": "x", "environment_id": 999}, 400),
        ({"environment_id": 1}, 400),  # no name
        ({"name": "x", "environment_id": 1, "execute_steps": ["ls"]}, 400),
        ({"name": "x", "environment_id": 1, "settings": {"threads": "lots"}}, 400),
        ({"name": "x", "environment_id": 1, "triggers": {"schedule": True}, "schedule": {"cron": "bad"}}, 400),
        ({"name": DAILY, "environment_id": 1}, 409),  # the name of a dockyard.yml job
    ],
)
def test_create_job_rejects_bad_bodies(client, body, code):
    response = client.post(f"{V2}/jobs/", json=body)
    assert response.status_code == code, response.text
    assert response.json()["data"] is None and response.json()["status"]["user_message"]


def test_config_jobs_cannot_be_changed_through_the_api(client, app):
    j = job_id(app)
    for response in (client.post(f"{V2}/jobs/{j}/", json={"name": "renamed"}), client.delete(f"{V2}/jobs/{j}/")):
        assert response.status_code == 409
        assert "dockyard.yml" in response.json()["status"]["user_message"]


def test_rerun_retries_a_failed_latest_run_else_triggers(client, app):
    j = job_id(app)
    ok = client.post(f"{V2}/jobs/{j}/rerun/").json()["data"]  # no runs yet: a new run
    assert ok["status"] == 1 and ok["retrying_run_id"] is None
    app.runs.cancel(ok["id"])
    failed = seed_run(app, status=RunStatus.ERROR, failed_step=4)
    data = client.post(f"{V2}/jobs/{j}/rerun/").json()["data"]
    assert data["id"] not in (ok["id"], failed) and data["href"]
    new = app.store.runs.get_run(data["id"])
    assert new.retry_of == failed and new.attempt == 2 and new.trigger == "retry"
    assert [s.command for s in new.steps][0].startswith("dbt run")


def test_account_project_environment_lookups(client, app):
    assert client.get(V2).json()["data"]["name"] and client.get(V2 + "/").json()["data"]["id"] == 1
    project = client.get(f"{V2}/projects/1").json()["data"]
    assert project["name"] == "shop" and project["connection"]["type"] == "duckdb"
    assert client.get(f"{V2}/projects/2").status_code == 404
    env = client.get(f"{V2}/environments/{env_id(app, 'prod')}").json()["data"]
    assert env["name"] == "prod" and env["project_id"] == 1 and env["deployment_type"] == "production"
    assert client.get(f"{V2}/environments/999").status_code == 404
    projects = client.get(f"{V3}/projects/", params={"name__icontains": "SHO", "offset": 0}).json()
    assert [p["name"] for p in projects["data"]] == ["shop"] and projects["extra"]["pagination"]["total_count"] == 1
    envs = client.get(f"{V3}/projects/1/environments/", params={"name__icontains": "prod"}).json()
    assert [e["name"] for e in envs["data"]] == ["prod"] and envs["extra"]["filters"]["limit"] == 100
    assert len(client.get(f"{V3}/projects/1/environments/").json()["data"]) == 4
    assert (
        client.get(f"{V3}/projects/1/environment-variables/job/", params={"job_definition_id": 1}).json()["data"] == {}
    )


def test_site_root_is_200_for_airflow_connection_test(client, anon):
    assert client.get("/").status_code == 200
    assert anon.get("/").status_code == 401


@pytest.mark.parametrize(
    "method, url, code",
    [
        ("GET", "/api/v2/accounts/1/nothing/", 404),
        ("GET", "/nowhere", 404),
        ("PUT", f"{V2}/runs/1/", 405),
        ("GET", f"{V2}/runs/abc/", 422),
        ("GET", "/api/v2/accounts/x/runs/", 422),
    ],
)
def test_every_error_is_the_json_envelope(client, method, url, code):
    response = client.request(method, url)
    assert response.status_code == code
    body = response.json()
    assert body["data"] is None and body["status"]["code"] == code and body["status"]["is_success"] is False
    assert body["status"]["user_message"] and "developer_message" in body["status"]


def test_account_id_comes_from_server_account_id(shop):
    from fastapi.testclient import TestClient
    from tests.api.conftest import make_app

    from dockyard.api.app import create_app

    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + "\nserver:\n  account_id: 7\n")
    app = make_app(shop)
    _, token = app.store.tokens.create_token("acct", "read")
    with TestClient(create_app(app), headers={"Authorization": f"Token {token}"}) as c:
        assert c.get("/api/v2/accounts/7/").json()["data"]["id"] == 7
        job = c.get(f"/api/v2/accounts/7/jobs/{job_id(app)}/").json()["data"]
        assert job["account_id"] == 7
        assert c.get("/api/v2/accounts/1/runs/").status_code == 404
        assert c.get(f"/api/v2/accounts/1/jobs/{job_id(app)}/").status_code == 404
    app.close()


def test_job_ids_are_the_ones_dockyard_jobs_prints(client, shop):
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "jobs", "--json", "--config", str(shop / "dockyard.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=shop,
    )
    assert proc.returncode == 0, proc.stderr
    printed = {j["name"]: j["id"] for j in json.loads(proc.stdout)}
    listed = {j["name"]: j["id"] for j in client.get(f"{V2}/jobs/").json()["data"]}
    assert printed == listed
