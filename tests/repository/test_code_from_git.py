"""Code from git end to end: real git (a bare repository on disk), real dbt on DuckDB.

One module-scoped scenario (each dbt run once): commit 1 deployed and run; commit 2 pushed,
deployed (a new job), run; commit 3 with an invalid dockyard.yml refused by ``dockyard
deploy`` (exit 1, the located error), its predecessor's jobs kept and the refusal shown by
``dockyard status``; a trigger with ``git_sha`` of commit 1 runs commit 1's model code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from dockyard import clock
from dockyard.api.app import create_app
from dockyard.app import App
from dockyard.config.loader import load_config
from dockyard.config.reload import Reloader
from dockyard.errors import SetupError
from dockyard.server.duties import PollRepository, Tick, TickReport
from repository.conftest import Remote, server_folder, tiny_project

pytestmark = pytest.mark.slow

SECOND_JOB = """\
  - name: Second
    environment: dev
    commands: ["dbt run --select answer"]
"""
BAD_JOB = """\
  - name: Broken
    environment: dev
    schedule: {cron: "61 * * * *"}
    commands: ["dbt run"]
"""


def answer(db: Path) -> int:
    with duckdb.connect(str(db / "dev.duckdb"), read_only=True) as conn:
        return conn.execute("select v from main.answer").fetchone()[0]


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(folder / "dockyard.yml")],
        cwd=folder,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_claimed(app: App, run_id: int):
    claim = app.store.queue.claim("test-worker", "test-host")
    assert claim is not None and claim.run_id == run_id
    return app.execute(run_id, epoch=claim.epoch)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("git")
    db = root / "db"
    db.mkdir()
    old = os.environ.get("TINY_DB")
    os.environ["TINY_DB"] = str(db)
    remote = Remote(root)
    out: dict = {"db": db, "remote": remote}
    try:
        out["c1"] = remote.commit(tiny_project(1), "one")
        folder = server_folder(root, str(remote.bare))
        config = folder / "dockyard.yml"
        config.write_text(config.read_text().replace("branch: main}", "branch: main, poll_seconds: 3600}"))
        out["folder"] = folder
        app = App.open(folder / "dockyard.yml")
        out["before_deploy_jobs"] = sorted(app.job_ids())
        out["deploy1"] = app.deploy()
        other = App.open(folder / "dockyard.yml")  # another process: starts on the deployed commit
        out["other_at_open"] = (getattr(other.loaded, "sha", None), sorted(other.job_ids()))
        out["run1"] = app.run_job("Build")
        out["answer1"] = answer(db)
        out["c2"] = remote.commit(tiny_project(2, SECOND_JOB), "two")
        out["deploy2"] = app.deploy()
        reloader = Reloader(other)
        other.repository._followed = 0.0
        out["other_followed"] = (reloader.check(), other.loaded.sha, sorted(other.job_ids()))
        plain = App(load_config(config))  # started on the server's file alone (e.g. the fallback)
        out["plain_sync"] = (sorted(plain.sync()), plain.loaded.sha)
        out["run2"] = app.run_job("Build")
        out["answer2"] = answer(db)
        out["c3"] = remote.commit(tiny_project(3, SECOND_JOB + BAD_JOB), "three: a bad cron")
        out["deploy3"] = cli(folder, "deploy")
        out["status3"] = cli(folder, "status", "--json")
        app.repository._followed = 0.0
        app.repository.follow()
        out["jobs3"] = sorted(app.job_ids())
        out["deployed3"] = app.repository.deployed()
        with TestClient(create_app(app)) as client:
            out["health3"] = client.get("/api/v1/health").json()
            out["cloud_run1"] = client.get(f"/api/v2/accounts/1/runs/{out['run1'].id}/").json()
        job_id = app.job_ids()["Build"]
        run_id = app.triggers.trigger(job_id, {"git_sha": out["c1"][:8], "cause": "old code"})
        out["run_old"] = run_claimed(app, run_id)
        out["answer_old"] = answer(db)
        run_id = app.triggers.trigger(job_id, {"git_sha": "deadbeef"})
        with pytest.raises(SetupError):
            run_claimed(app, run_id)
        out["run_unknown"] = app.runs.get(run_id)
        out["poll_refused"] = app.repository.poll()  # the head is commit 3, already refused
        out["c4"] = remote.commit(tiny_project(4, SECOND_JOB), "four: fixed")
        PollRepository(app).run(Tick(clock.now(), TickReport(), {}))
        out["polled"] = app.repository.deployed()
        out["rollback"] = cli(folder, "deploy", "--sha", out["c1"][:10], "--json")
        out["logs"] = {
            r.id: app.runs.logs(r.id) for r in (out["run1"], out["run2"], out["run_old"], out["run_unknown"])
        }
        out["app"] = app
        yield out
    finally:
        if old is None:
            os.environ.pop("TINY_DB", None)
        else:
            os.environ["TINY_DB"] = old


def test_deploy_puts_the_commit_jobs_in_force(scenario):
    assert scenario["before_deploy_jobs"] == []  # the server's file has no jobs of its own
    assert scenario["deploy1"] == {"sha": scenario["c1"], "status": "ok", "jobs": {"Build": 1}}
    assert scenario["deploy2"]["status"] == "ok" and sorted(scenario["deploy2"]["jobs"]) == ["Build", "Second"]
    assert scenario["deploy2"]["sha"] == scenario["c2"]


def test_a_run_records_and_runs_the_deployed_commit(scenario):
    run1, run2 = scenario["run1"], scenario["run2"]
    assert run1.status.value == "success", scenario["logs"][run1.id][-2000:]
    assert (run1.git_sha, run1.git_branch) == (scenario["c1"], "main")
    assert scenario["answer1"] == 1  # commit 1's model, checked in DuckDB
    assert (run2.git_sha, scenario["answer2"]) == (scenario["c2"], 2)
    cloud = scenario["cloud_run1"]["data"]  # the dbt Cloud shape
    assert (cloud["git_sha"], cloud["git_branch"]) == (scenario["c1"], "main")
    # the server's profiles.yml, never the commit's
    assert not (scenario["db"] / "from_the_commit.duckdb").exists()


def test_other_processes_follow_the_deployed_commit(scenario):
    assert scenario["other_at_open"] == (scenario["c1"], ["Build"])
    assert scenario["other_followed"] == (True, scenario["c2"], ["Build", "Second"])
    # a process on the server's own file never syncs it over the deployed commit's jobs
    assert scenario["plain_sync"] == (["Build", "Second"], scenario["c2"])


def test_an_invalid_commit_is_refused_with_the_located_error_and_the_old_jobs_stay(scenario):
    c3 = scenario["c3"]
    proc = scenario["deploy3"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the cron line of commit 3's dockyard.yml (line 12), named by the commit
    assert f"dockyard.yml@{c3[:12]}:12, key jobs[2].schedule.cron" in proc.stderr, proc.stderr
    assert scenario["jobs3"] == ["Build", "Second"]
    status = json.loads(scenario["status3"].stdout)["repository"]
    assert status["deployed"]["sha"] == scenario["c2"]
    assert status["refused"]["sha"] == c3 and f"dockyard.yml@{c3[:12]}:12" in status["refused"]["error"]
    assert scenario["deployed3"] == scenario["c2"]
    health = scenario["health3"]["repository"]  # no token needed: no URL there
    assert health["deployed"]["sha"] == scenario["c2"] and health["refused"]["sha"] == c3
    assert "url" not in health and str(scenario["remote"].bare) not in json.dumps(scenario["health3"])


def test_a_trigger_with_git_sha_runs_that_older_commit(scenario):
    run = scenario["run_old"]
    assert run.status.value == "success", scenario["logs"][run.id][-2000:]
    assert run.git_sha == scenario["c1"]  # the short sha of the trigger, resolved
    assert scenario["answer_old"] == 1


def test_partial_parse_survives_the_change_of_commit(scenario):
    logs = scenario["logs"]
    first, second, old = (logs[scenario[k].id] for k in ("run1", "run2", "run_old"))
    assert "Unable to do partial parsing" in first  # nothing saved yet: a full parse
    for text in (second, old):
        assert "Unable to do partial parsing" not in text, text[-3000:]


def test_a_trigger_with_an_unknown_sha_fails_at_once_naming_it(scenario):
    run = scenario["run_unknown"]
    assert (run.status.value, run.reason) == ("error", "setup_failed")
    assert "commit deadbeef is not in" in scenario["logs"][run.id]


def test_polling_deploys_a_new_head_and_never_retries_a_refused_one(scenario):
    assert scenario["poll_refused"] is None
    assert scenario["polled"] == scenario["c4"]


def test_deploy_sha_rolls_back_to_an_older_commit(scenario):
    proc = scenario["rollback"]
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"sha": scenario["c1"], "status": "ok", "jobs": {"Build": 1}}
