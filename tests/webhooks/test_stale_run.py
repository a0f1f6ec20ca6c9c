"""A stale CI run is cancelled by a newer push, end to end (real worker, real dbt on DuckDB):
the PR's first run is running dbt when a ``synchronize`` delivery arrives; its worker stops it
(``cancelled``) and the run of the new head sha runs next and succeeds."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import make_app
from tests.webhooks.conftest import Sender, pull_request

from dockyard.api.app import create_app
from dockyard.server.worker import Worker

pytestmark = pytest.mark.slow


def test_a_newer_push_stops_the_running_ci_run(hooked):
    config = hooked / "dockyard.yml"
    text = config.read_text().replace(
        '    commands: ["dbt build"]\n    triggers: {github_webhook: true}',
        '    commands: ["dbt seed", "dbt run", "dbt test", "dbt build"]\n    triggers: {github_webhook: true}',
    )
    config.write_text(text + "  heartbeat_seconds: 0.5\n")  # under the server: block the fixture added
    app = make_app(hooked)
    try:
        assert app.config.server.heartbeat_seconds == 0.5
        with TestClient(create_app(app), base_url="https://testserver") as client:
            send = Sender(client)
            first = send.github("pull_request", pull_request(61, sha="1" * 40)).json()["data"]["runs"][0]
            worker = Worker(app, worker_id="stale-test")
            ran: list = []
            thread = threading.Thread(target=lambda: ran.append(worker.run_once()), daemon=True)
            thread.start()
            deadline = time.monotonic() + 120
            while app.runs.get(first).status.value != "running" or not app.runs.get(first).nodes:
                assert time.monotonic() < deadline and thread.is_alive(), app.runs.logs(first, tail=30)
                time.sleep(0.1)
            answer = send.github("pull_request", pull_request(61, action="synchronize", sha="2" * 40))
            data = answer.json()["data"]
            assert data["cancelled"] == [first]
            thread.join(timeout=120)
            assert ran == [first]
            stopped = app.runs.get(first)
            assert stopped.status.value == "cancelled", app.runs.logs(first, tail=30)
            assert stopped.steps[-1].status.value in ("skipped", "cancelled")  # it did not run to its end
            assert worker.run_once() == data["runs"][0]
            newer = app.runs.get(data["runs"][0])
            assert newer.status.value == "success" and newer.git_sha == "2" * 40
    finally:
        app.close()
