"""What the orchestrators' retries read from the dbt Cloud routes: prefect-dbt's targeted
retry (``DbtCloudJobRun.retry_failed_steps``) reads ``run_steps`` from a plain
``GET runs/{id}`` (no ``include_related``) and the failed step's ``run_results.json``
(``?step=N``); Airflow's ``retry_from_failure`` reads the job's latest run (``limit=1``) and
posts ``jobs/{id}/rerun/``."""

from __future__ import annotations

import shlex

import pytest
from tests.api.conftest import DAILY, job_id, seed_run

from dockyard.domain import RunStatus

V2 = "/api/v2/accounts/1"


def prefect_steps_to_retry(run: dict) -> list[tuple[int, str]]:
    """prefect-dbt 0.7.25's choice of steps (jobs.py ``_build_trigger_job_run_options``)."""
    out = []
    for step in run["run_steps"]:
        status = step["status_humanized"].lower()
        if step["index"] <= 3 or status == "success":
            continue
        command = step["name"].partition("`")[2].partition("`")[0]
        if status in ("error", "skipped", "cancelled") and shlex.split(command):
            out.append((step["index"], command))
    return out


@pytest.mark.parametrize("status, failed", [(RunStatus.ERROR, 4), (RunStatus.CANCELLED, 2)])
def test_failed_run_lists_its_steps_without_include_related(client, app, status, failed):
    run_id = seed_run(app, status=status, failed_step=failed)
    data = client.get(f"{V2}/runs/{run_id}/").json()["data"]
    commands = app.job(DAILY)[1].all_commands
    steps = data["run_steps"]
    assert [s["index"] for s in steps] == list(range(1, len(commands) + 4))
    assert all(s["logs"] == "" and s["debug_logs"] == "" for s in steps[3:])  # no log file read
    retried = prefect_steps_to_retry(data)
    assert retried[0] == (failed + 3, commands[failed - 1])  # the failed step first, then the skipped ones
    assert [c for _, c in retried] == commands[failed - 1 :]
    # the step index Prefect then asks artifacts for exists
    response = client.get(f"{V2}/runs/{run_id}/artifacts/run_results.json", params={"step": retried[0][0]})
    assert response.status_code in (200, 404) and response.headers["content-type"].startswith("application/json")
    # with include_related the steps carry their logs, as before
    full = client.get(f"{V2}/runs/{run_id}/", params={"include_related": "run_steps"}).json()["data"]
    assert "log for" in full["run_steps"][failed + 2]["logs"]


@pytest.mark.parametrize("status", [RunStatus.SUCCESS, RunStatus.RUNNING, RunStatus.QUEUED])
def test_other_runs_keep_empty_run_steps_without_include_related(client, app, status):
    run_id = seed_run(app, status=status)
    assert client.get(f"{V2}/runs/{run_id}/").json()["data"]["run_steps"] == []


def test_run_list_lists_failed_runs_steps_without_logs(client, app):
    ok, failed = seed_run(app), seed_run(app, status=RunStatus.ERROR, failed_step=3)
    data = {r["id"]: r for r in client.get(f"{V2}/runs/", params={"job_definition_id": job_id(app)}).json()["data"]}
    assert data[ok]["run_steps"] == []
    assert prefect_steps_to_retry(data[failed])[0][0] == 6


def test_airflow_retry_from_failure_reads_the_latest_run_then_reruns(client, app):
    job = job_id(app)
    failed = seed_run(app, status=RunStatus.ERROR, failed_step=4)
    latest = client.get(f"{V2}/runs/", params={"job_definition_id": job, "order_by": "-created_at", "limit": 1}).json()[
        "data"
    ]
    assert [r["id"] for r in latest] == [failed] and latest[0]["status"] == 20
    rerun = client.post(f"{V2}/jobs/{job}/rerun/").json()["data"]
    assert rerun["id"] != failed and rerun["href"] and rerun["status"] == 1
    run = app.runs.get(rerun["id"])
    assert run.retry_of == failed and run.trigger == "retry"
    commands = app.job(DAILY)[1].all_commands
    assert [s.command for s in run.steps][-1] == commands[-1]  # from the failed step on, not from the start
    assert len(run.steps) == len(commands) - 3
