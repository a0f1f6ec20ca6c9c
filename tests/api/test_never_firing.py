"""Issue 7 item 3: a valid cron that never fires (``0 0 31 2 *``) is refused where it is
written (dockyard.yml, the API) and, when stored anyway (before the check, or edited in the
store), never breaks a list, a detail, a delete, health, the CLI or a scheduler tick."""

from __future__ import annotations

import logging

import pytest
from tests.api.conftest import make_app
from typer.testing import CliRunner

from dockyard import cloud_jobs
from dockyard.cli.main import cli
from dockyard.config.loader import load_config
from dockyard.errors import ConfigErrors
from dockyard.schedule import check_cron
from dockyard.server.scheduler import Scheduler

V2 = "/api/v2/accounts/1"
NEVER = ["0 0 31 2 *", "0 0 30 2 *", "59 23 31 4,6,9,11 *", "0 0 1 1 1#5"]


def test_check_cron_refuses_schedules_without_a_fire_within_the_horizon():
    for expr in NEVER:
        assert "never fires" in (check_cron(expr) or ""), expr
    for expr in ("0 0 29 2 *", "0 2 * * *", "*/5 * * * *", "0 0 L 2 *"):
        assert check_cron(expr) is None, expr
    assert "at most 200" in check_cron(",".join(["0"] * 150) + " * * * *")  # the store's column


def test_dockyard_yml_with_a_never_firing_cron_is_a_located_error(shop):
    config = shop / "dockyard.yml"
    text = config.read_text()
    config.write_text(text.replace('cron: "0 2 * * *"', 'cron: "0 0 31 2 *"', 1))
    line = next(i for i, ln in enumerate(config.read_text().splitlines(), 1) if "0 0 31 2 *" in ln)
    with pytest.raises(ConfigErrors) as err:
        load_config(config)
    rendered = err.value.render()
    assert f"dockyard.yml:{line}, key jobs[0].schedule.cron" in rendered and "never fires" in rendered
    result = CliRunner().invoke(cli, ["--config", str(config), "validate"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "never fires" in result.output and "jobs[0].schedule.cron" in result.output


def test_api_refuses_a_never_firing_cron_and_stores_nothing(client, app):
    env = app.store.jobs.list_environments()[0]["id"]
    before = len(app.store.jobs.job_rows(active_only=False))
    for schedule_on in (True, False):
        answer = client.post(
            f"{V2}/jobs/",
            json={
                "name": "never",
                "environment_id": env,
                "schedule": {"cron": "0 0 31 2 *"},
                "triggers": {"schedule": schedule_on},
            },
        )
        assert answer.status_code == 400, answer.text
        assert "schedule.cron" in answer.json()["status"]["user_message"]
        assert "never fires" in answer.json()["status"]["user_message"]
    assert len(app.store.jobs.job_rows(active_only=False)) == before
    made = client.post(
        f"{V2}/jobs/",
        json={"name": "fine", "environment_id": env, "schedule": {"cron": "0 3 * * *"}, "triggers": {"schedule": True}},
    )
    assert made.status_code == 201, made.text
    job = made.json()["data"]["id"]
    update = client.post(f"{V2}/jobs/{job}/", json={"schedule": {"cron": "0 0 30 2 *"}})
    assert update.status_code == 400 and "never fires" in update.text
    assert app.store.jobs.get_job(job).cron == "0 3 * * *"


def _plant_broken_jobs(app) -> list[int]:
    """API jobs whose stored schedules cannot be computed, written straight into the store
    (as before the check, or edited by hand)."""
    env = app.store.jobs.list_environments()[0]
    fields = cloud_jobs.merge_payload({"name": "x", "environment_id": env["id"]})
    ids = []
    for name, cron, tz in (
        ("never fires", "0 0 31 2 *", "UTC"),
        ("bad zone", "0 2 * * *", "Mars/Olympus"),
        ("garbage", "not a cron", "UTC"),
    ):
        fields["schedule"] = {"cron": cron}
        record = app.store.jobs.create_api_job(
            name, env["name"], cloud_jobs.definition(fields, env["name"]), cron=cron, timezone=tz
        )
        ids.append(record.id)
    return ids


def _every_job_route_answers(client, app, ids: list[int]) -> None:
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] != "unavailable", health.text
    native = client.get("/api/v1/jobs")
    assert native.status_code == 200, native.text
    by_id = {j["id"]: j for j in native.json()["data"]}
    cloud = client.get(f"{V2}/jobs/")
    assert cloud.status_code == 200, cloud.text
    cloud_by_id = {j["id"]: j for j in cloud.json()["data"]}
    for job in ids:
        assert by_id[job]["next_fires"] == [] and cloud_by_id[job]["next_run"] is None
        detail = client.get(f"/api/v1/jobs/{job}")
        assert detail.status_code == 200 and detail.json()["data"]["next_fires"] == []
        cloud_detail = client.get(f"{V2}/jobs/{job}/")
        assert cloud_detail.status_code == 200 and cloud_detail.json()["data"]["next_run"] is None
    # the good jobs still show their fires
    assert any(j["next_fires"] for j in native.json()["data"])
    runner = CliRunner()
    config = str(app.loaded.path)
    for args in (["jobs"], ["jobs", "--json"], ["status"], ["status", "--json"]):
        result = runner.invoke(cli, ["--config", config, *args])
        assert result.exit_code == 0, (args, result.output)
        assert "never fires" in result.output
    for job in ids:
        deleted = client.delete(f"{V2}/jobs/{job}/")
        assert deleted.status_code == 200 and deleted.json()["data"]["state"] == 2, deleted.text


def test_a_stored_job_that_never_fires_breaks_no_answer(client, app):
    _every_job_route_answers(client, app, _plant_broken_jobs(app))


def test_scheduler_skips_a_schedule_it_cannot_compute(app, caplog):
    job = next(j for j in app.config.jobs if j.cron)
    scheduler = Scheduler(app, "test-scheduler")
    scheduler.tick()  # first sight: remembers "now" as the last fire
    job.schedule.cron = "0 0 31 2 *"  # a config loaded before the check (the model is not frozen)
    with caplog.at_level(logging.WARNING, logger="dockyard.server.scheduler"):
        report = scheduler.tick()
    assert report.enqueued == [] and "cannot be computed, skipped" in caplog.text


@pytest.mark.postgres
def test_a_stored_job_that_never_fires_breaks_no_answer_on_postgresql(shop, pg_database_factory, monkeypatch):
    from fastapi.testclient import TestClient

    from dockyard.api.app import create_app

    url = pg_database_factory()
    monkeypatch.setenv("DOCKYARD_STORE_URL", url)  # the CLI commands use the same store
    pg_app = make_app(shop, url)
    try:
        with TestClient(create_app(pg_app), base_url="https://testserver") as pg_client:
            _every_job_route_answers(pg_client, pg_app, _plant_broken_jobs(pg_app))
    finally:
        pg_app.close()


def test_a_stored_job_with_an_unusable_definition_breaks_no_list(client, app):
    """Same class: a definition edited in the store into something that is not one."""
    env = app.store.jobs.list_environments()[0]["name"]
    broken = [
        app.store.jobs.create_api_job(f"broken {i}", env, definition).id
        for i, definition in enumerate(
            [
                {"source": "api", "job": {"commands": []}, "cloud": {}},
                {"source": "api", "job": "not an object", "cloud": {"settings": 5}},
                {"source": "api", "job": {"commands": ["dbt run"]}, "cloud": "not an object"},
                {"source": "api"},
            ]
        )
    ]
    for path in ("/api/v1/jobs", f"{V2}/jobs/"):
        listed = client.get(path)
        assert listed.status_code == 200, listed.text
        assert "Daily Production Run" in [j["name"] for j in listed.json()["data"]]
    assert client.get("/api/v1/health").status_code == 200
    for job in broken:
        assert client.get(f"{V2}/jobs/{job}/").status_code in (200, 404)
    result = CliRunner().invoke(cli, ["--config", str(app.loaded.path), "jobs"])
    assert result.exit_code == 0 and "broken 1" in result.output, result.output
