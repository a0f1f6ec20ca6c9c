"""The native API (/api/v1): jobs, environments, runs, logs (live too), artifacts, docs,
trigger with overrides (and how the executor applies them), cancel, rerun, figures."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from ruamel.yaml import YAML
from tests.api.conftest import DAILY, job_id, seed_run

from dockyard.domain import RunStatus, StepStatus

V1 = "/api/v1"


def test_jobs_and_environments(client, app):
    jobs = client.get(f"{V1}/jobs").json()["data"]
    assert {j["name"] for j in jobs} == {DAILY, "CI"}
    daily = next(j for j in jobs if j["name"] == DAILY)
    assert daily["id"] == job_id(app) and daily["source"] == "config" and len(daily["next_fires"]) == 3
    assert client.get(f"{V1}/jobs/{daily['id']}").json()["data"]["commands"][0] == "dbt seed"
    assert client.get(f"{V1}/jobs/999").status_code == 404
    envs = client.get(f"{V1}/environments").json()["data"]
    assert {e["name"] for e in envs} == {"dev", "staging", "prod", "ci"}
    assert client.get(f"{V1}/environments/{envs[0]['id']}").json()["data"]["name"] == envs[0]["name"]


def test_runs_list_filters_offset_and_cursor(client, app):
    ids = [seed_run(app) for _ in range(5)] + [seed_run(app, status=RunStatus.ERROR, failed_step=4)]
    body = client.get(f"{V1}/runs", params={"limit": 2}).json()
    assert [r["id"] for r in body["data"]] == ids[::-1][:2]
    assert body["extra"]["pagination"]["total_count"] == 6
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{V1}/runs", params=params).json()
        seen += [r["id"] for r in page["data"]]
        cursor = page["extra"]["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    assert [r["id"] for r in client.get(f"{V1}/runs", params={"offset": 4, "limit": 10}).json()["data"]] == ids[1::-1]
    assert [r["id"] for r in client.get(f"{V1}/runs", params={"status": "error"}).json()["data"]] == [ids[-1]]
    assert [
        r["id"] for r in client.get(f"{V1}/runs", params={"status": "20,10", "order_by": "id"}).json()["data"]
    ] == ids
    assert client.get(f"{V1}/runs", params={"job_id": 999}).json()["data"] == []
    assert client.get(f"{V1}/runs", params={"created_after": "2999-01-01"}).json()["data"] == []
    assert len(client.get(f"{V1}/runs", params={"environment": "prod,dev", "trigger": "api"}).json()["data"]) == 6
    assert client.get(f"{V1}/runs", params={"cursor": "x"}).status_code == 400


def test_run_detail_has_steps_nodes_and_artifacts(client, app):
    run_id = seed_run(app, status=RunStatus.ERROR, failed_step=4)
    data = client.get(f"{V1}/runs/{run_id}").json()["data"]
    assert data["status"] == "error" and data["status_code"] == 20 and data["reason"] == "step_failed"
    assert [s["status"] for s in data["steps"]][:5] == ["success", "success", "success", "error", "skipped"]
    assert {n["unique_id"] for n in data["nodes"]} >= {"model.shop.m1", "test.shop.t4"}
    assert data["artifacts"][0]["path"] == "step-1/manifest.json"
    assert client.get(f"{V1}/runs/99999").status_code == 404


def test_logs_artifacts_and_docs(client, app):
    run_id = seed_run(app)
    text = client.get(f"{V1}/runs/{run_id}/logs").text
    assert "== step 1: dbt seed ==" in text and "step 6 log for `dbt docs generate`" in text
    one = client.get(f"{V1}/runs/{run_id}/logs", params={"step": 2}).text
    assert one.startswith("== step 2: dbt source freshness ==") and "step 1 log" not in one
    assert client.get(f"{V1}/runs/{run_id}/logs", params={"step": 42}).status_code == 404
    listed = client.get(f"{V1}/runs/{run_id}/artifacts").json()["data"]
    assert listed[0]["url"] == f"/api/v1/runs/{run_id}/artifacts/step-1/manifest.json"
    got = client.get(listed[0]["url"])
    assert got.status_code == 200 and got.json()["metadata"]["step"] == 1
    docs = client.get(f"{V1}/runs/{run_id}/docs/index.html")
    assert docs.status_code == 200 and docs.text == "<html>docs</html>"
    assert "sandbox" in docs.headers["content-security-policy"]
    assert client.get(f"{V1}/runs/{run_id}/docs/catalog.json").status_code == 200
    assert client.get(f"{V1}/runs/{seed_run(app, job='CI')}/docs/index.html").status_code == 404


def test_logs_follow_streams_until_the_run_is_final(client, app):
    run_id = seed_run(app, status=RunStatus.RUNNING)
    store = app.store
    log = app.state_dir / "runs" / str(run_id) / "logs" / "step-1.log"

    def finish():
        time.sleep(0.8)
        with open(log, "a") as fh:
            fh.write("a line written while following\n")
        time.sleep(0.8)
        store.runs.finish_step(run_id, 1, StepStatus.SUCCESS, 0, datetime.now(UTC))
        store.runs.skip_steps(run_id, 2)
        store.runs.transition_run(run_id, RunStatus.SUCCESS, finished_at=datetime.now(UTC))

    worker = threading.Thread(target=finish)
    worker.start()
    started = time.monotonic()
    with client.stream("GET", f"{V1}/runs/{run_id}/logs", params={"follow": "true"}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    worker.join()
    assert time.monotonic() - started >= 1.5  # it waited for the run
    assert "== step 1: dbt seed ==" in text and "a line written while following" in text
    assert text.index("step 1 log") < text.index("a line written while following")


def test_native_trigger_with_overrides_and_environment(client, app, monkeypatch):
    # another environment, and a target_name_override that is another output of the profile,
    # are for unrestricted admins (tests/api/test_command_policy.py: everyone else)
    monkeypatch.setattr(app.config.server, "api_admin_unrestricted", True)
    j = job_id(app)
    body = {
        "environment": "dev",
        "threads_override": 1,
        "schema_override": "pr_7",
        "target_name_override": "pr_target",
        "steps_override": ["dbt seed"],
        "timeout_seconds_override": 0,
        "cause": "native",
    }
    data = client.post(f"{V1}/jobs/{j}/trigger", json=body).json()["data"]
    assert data["status"] == "queued" and data["environment"] == "dev" and data["cause"] == "native"
    run = app.store.runs.get_run(data["id"])
    assert [s.command for s in run.steps] == ["dbt seed"]
    # what a worker would run: the overrides of this run, and only of this run
    record, job = app.job(j)
    plan = app.execution.plan(
        run.id, "dev", "dev", job, ["dbt seed"], {}, app.state_dir / "runs" / str(run.id), job_id=record.id, run=run
    )
    argv = plan.steps[0].argv
    assert argv[argv.index("--threads") + 1] == "1" and argv[argv.index("--target") + 1] == "pr_target"
    profiles = argv[argv.index("--profiles-dir") + 1]
    assert "/profiles/dev/run-" in profiles
    profile = YAML(typ="safe").load((app.state_dir / profiles / "profiles.yml").read_text())
    output = profile["shop"]["outputs"]["pr_target"]
    assert output["schema"] == "pr_7" and output["type"] == "duckdb"
    assert plan.timeout_seconds == 7 * 86400  # 0 = no timeout
    plain = app.execution.plan(
        run.id, "dev", "dev", job, ["dbt seed"], {}, app.state_dir / "runs" / "x", job_id=record.id
    )
    assert "pr_target" not in plain.steps[0].argv and plain.timeout_seconds == job.timeout_seconds
    existing = client.post(f"{V1}/jobs/{j}/trigger", json={"target_name_override": "dev", "git_sha": "abcdef1"})
    run2 = app.store.runs.get_run(existing.json()["data"]["id"])
    plan2 = app.execution.plan(run2.id, "prod", "prod", job, ["dbt run"], {}, app.state_dir / "runs" / "y", run=run2)
    assert plan2.steps[0].argv[plan2.steps[0].argv.index("--target") + 1] == "dev"  # a real target: --target
    assert "/profiles/" not in plan2.steps[0].argv[plan2.steps[0].argv.index("--profiles-dir") + 1]
    assert plan2.env["DBT_CLOUD_GIT_SHA"] == "abcdef1"
    assert client.post(f"{V1}/jobs/{j}/trigger", json={"environment": "nope"}).status_code == 400


def test_cancel_and_rerun(client, app):
    queued = seed_run(app, status=RunStatus.QUEUED)
    done = client.post(f"{V1}/runs/{queued}/cancel").json()["data"]
    assert done["outcome"] == "cancelled" and done["run"]["status"] == "cancelled"
    again = client.post(f"{V1}/runs/{queued}/cancel")  # already ended: refused, truthfully
    assert again.status_code == 409
    assert f"run {queued} already ended with status cancelled" in again.text
    failed = seed_run(app, status=RunStatus.ERROR, failed_step=4)
    again = client.post(f"{V1}/runs/{failed}/rerun", json={"from_failure": False}).json()["data"]
    assert again["retry_of"] == failed and again["trigger"] == "retry" and len(again["steps"]) == 6
    partial = client.post(f"{V1}/runs/{failed}/rerun").json()["data"]
    assert partial["attempt"] == 2 and partial["steps"][0]["command"].startswith("dbt run")
    ok = seed_run(app)
    refused = client.post(f"{V1}/runs/{ok}/rerun")
    assert refused.status_code == 409 and "succeeded" in refused.json()["status"]["user_message"]


def test_figures_for_the_ui(client, app):
    first, second = seed_run(app), seed_run(app, status=RunStatus.ERROR, failed_step=4)
    series = client.get(f"{V1}/stats/model-durations", params={"job_id": job_id(app)}).json()["data"]
    m1 = next(s for s in series if s["unique_id"] == "model.shop.m1")
    assert [p["run_id"] for p in m1["points"]] == [first, second] and m1["points"][0]["execution_time_s"] == 1.5
    only = client.get(f"{V1}/stats/model-durations", params={"unique_id": "model.shop.m2"}).json()["data"]
    assert [s["unique_id"] for s in only] == ["model.shop.m2"]
    tests = client.get(f"{V1}/stats/test-results").json()["data"]
    assert [t["run_id"] for t in tests] == [second, first]
    assert tests[1]["counts"]["pass"] == 3 and tests[1]["counts"]["fail"] == 3
    assert "test.shop.t2" in tests[1]["failing"]
    assert client.get(f"{V1}/stats/test-results", params={"runs": 100000}).status_code == 200
