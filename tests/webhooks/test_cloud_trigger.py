"""dbt Cloud's trigger overrides drive the webhook's path: a ``POST .../jobs/{id}/run/`` with
``github_pull_request_id`` (and ``git_sha``, ``git_branch``, ``schema_override``) queues a run
shaped as a webhook's CI run, and a worker runs it as a CI run (real dbt on DuckDB): ci.json
written, the models built in the ``schema_override`` schema, production untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from tests.webhooks.conftest import ci_runs, pull_request

from dockyard.app.ci import pr_number
from dockyard.server.worker import Worker

SHA = "ab12" * 10


@pytest.mark.slow
def test_a_dbt_cloud_trigger_with_a_pr_id_runs_as_a_ci_run(app, send):
    ci_job = app.job("CI")[0].id
    body = {
        "cause": "CI from GitHub Actions",
        "git_sha": SHA,
        "git_branch": "feature/orders",
        "github_pull_request_id": 44,
        "schema_override": "ci_custom_44",
    }
    response = send.client.post(f"/api/v2/accounts/1/jobs/{ci_job}/run/", json=body)
    assert response.status_code == 200, response.text
    shape = response.json()["data"]
    trigger = shape["trigger"]
    assert shape["git_sha"] == SHA and shape["git_branch"] == "feature/orders"
    assert trigger["github_pull_request_id"] == 44 and trigger["schema_override"] == "ci_custom_44"
    [run] = ci_runs(app, 44)
    assert pr_number(run.overrides) == (44, "github")  # a CI run, as the webhook's
    hooked = send.github("pull_request", pull_request(45, sha=SHA, ref="feature/orders")).json()["data"]["runs"][0]
    webhook = app.runs.get(hooked)
    assert set(webhook.overrides) - {"schema_override"} <= set(run.overrides) and webhook.git_sha == run.git_sha
    app.runs.cancel(hooked)  # only the API-triggered one is run below

    assert Worker(app, worker_id="test-worker").run_once() == run.id
    done = app.runs.get(run.id)
    assert done.status.value == "success", app.runs.logs(run.id, tail=40)
    report = json.loads((app.runs.artifact_root(run.id) / "ci.json").read_text())
    assert report["pr"] == 44 and report["schema"] == "ci_custom_44" and report["environment"] == "ci"
    with duckdb.connect(str(Path(os.environ["SHOP_DUCKDB_DIR"]) / "shop_ci.duckdb"), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select table_schema from information_schema.tables").fetchall()}
    assert any(s == "ci_custom_44" or s.startswith("ci_custom_44_") for s in schemas), schemas
    assert "ci" not in schemas  # the CI environment's own schema was not written
