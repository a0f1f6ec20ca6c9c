"""The server's path to the pull request: a signed pull_request webhook queues a CI run, a
worker runs it (real dbt on DuckDB), and the scheduler's event dispatch hands its events to
the pull_request sink, which comments on the fake git host and sets the status; the next
push's run edits the same comment."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from tests.ci.conftest import TOKEN
from tests.ci.fake_git_host import FakeGitHost
from tests.slim.conftest import PROJECT, write_project
from tests.webhooks.conftest import GITHUB_SECRET, Sender, pull_request

from dockyard.api.app import create_app
from dockyard.app import App
from dockyard.server.scheduler import Scheduler
from dockyard.server.worker import Worker

SHA1, SHA2 = "a1" * 20, "b2" * 20
MARK = "<!-- dockyard-ci:ci -->"


def wait_for(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_webhook_run_is_reported_on_the_pull_request(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("CI_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("SLIM_DB", str(tmp_path / "warehouse.duckdb"))
    with FakeGitHost(token=TOKEN) as host:
        config = PROJECT["dockyard.yml"].replace(
            "ci:\n          environment: ci\n          base: prod\n",
            "ci:\n          environment: ci\n          base: prod\n"
            f"          github: {{repo: acme/shop, token: 'env:CI_GITHUB_TOKEN', api_url: '{host.github_url}'}}\n"
            "        server:\n          github_webhook_secret: env:DOCKYARD_TEST_GITHUB_SECRET\n"
            "        events:\n          sinks: [{type: pull_request}]\n",
        )
        root = tmp_path / "project"
        write_project(root, {**PROJECT, "dockyard.yml": config})
        app = App.open(root / "dockyard.yml")
        scheduler = Scheduler(app, "sched-test")
        try:
            app.sync()
            assert app.run_job("Prod").status.value == "success"
            scheduler.tick()  # the sinks' threads start (and see the prod run: not a CI run)
            fct = root / "models/marts/fct_orders.sql"
            fct.write_text(fct.read_text().replace("as amount", "as amount, 1 as one"))
            with TestClient(create_app(app), base_url="https://testserver") as client:
                send = Sender(client)
                answer = send.github("pull_request", pull_request(7, sha=SHA1, ref="feature/one"))
                assert answer.status_code == 200, answer.text
                [run_id] = answer.json()["data"]["runs"]
                claimed = Worker(app, worker_id="w1").run_once()
                assert claimed == run_id, (claimed, [(r.id, r.status, r.reason) for r in app.runs.list(limit=5)])
                assert app.runs.get(run_id).status.value == "success", app.runs.logs(run_id, tail=40)
                scheduler.tick()
                ok = wait_for(lambda: (host.statuses.get(SHA1) or [{}])[-1].get("state") == "success")
                assert ok, (host.statuses, app.store.reader.outbox.cursor("pull_request"))
                [comment] = host.comments[("acme/shop", 7)]
                assert comment["body"].startswith(MARK) and "fct\\_orders" in comment["body"]

                # the next push: a new CI run of the new head; the same comment is edited
                answer = send.github("pull_request", pull_request(7, "synchronize", sha=SHA2, ref="feature/one"))
                [second] = answer.json()["data"]["runs"]
                claimed = Worker(app, worker_id="w1").run_once()
                assert claimed == second, (claimed, [(r.id, r.status, r.reason) for r in app.runs.list(limit=5)])
                assert app.runs.get(second).status.value == "success", app.runs.logs(second, tail=40)
                scheduler.tick()
                ok = wait_for(lambda: (host.statuses.get(SHA2) or [{}])[-1].get("state") == "success")
                assert ok, (host.statuses, app.store.reader.outbox.cursor("pull_request"))
                assert wait_for(lambda: f"run {second}" in host.comments[("acme/shop", 7)][0]["body"])
            comments = host.comments[("acme/shop", 7)]
            assert len(comments) == 1 and comments[0]["id"] == comment["id"]
            statused = {r.path.rsplit("/", 1)[1] for r in host.requests if "/statuses/" in r.path}
            assert statused == {SHA1, SHA2}  # the prod run (not a CI run) posted nothing
        finally:
            scheduler.close()
            app.close()
