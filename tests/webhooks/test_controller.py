"""What a verified delivery does (no dbt: runs are queued and cancelled in the real store).
A newer push to a PR cancels its older queued and running CI runs (and no other PR's); ignored
events record nothing; a delivery whose handler died is taken over by its redelivery without
queueing twice; a failed handler lets the next copy act at once."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient
from tests.api.conftest import make_app
from tests.webhooks.conftest import Sender, ci_runs, merge_request, pull_request

from dockyard import clock
from dockyard.api.app import create_app
from dockyard.ci.controller import Controller, fire_key
from dockyard.ci.webhooks import PullRequestEvent


def _status(app, run_id: int) -> str:
    return app.runs.get(run_id).status.value


def test_opened_queues_the_ci_job_as_a_ci_run_of_the_head_sha(app, send):
    response = send.github("pull_request", pull_request(12, sha="1" * 40, ref="feature/orders"))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["pull_request"] == 12 and data["cancelled"] == []
    [run] = ci_runs(app, 12)
    assert data["runs"] == [run.id]
    assert run.job == "CI" and run.environment == "ci" and run.trigger == "ci"
    assert run.cause == "Pull request #12"
    assert run.git_sha == "1" * 40 and run.git_branch == "feature/orders"
    assert run.overrides["github_pull_request_id"] == 12
    assert app.ci.jobs() and {v.name for v in app.ci.jobs()} == {"CI"}


def test_a_newer_push_cancels_the_older_runs_of_that_pr_only(app, send):
    first = send.github("pull_request", pull_request(21, sha="1" * 40)).json()["data"]["runs"][0]
    other = send.github("pull_request", pull_request(22, sha="2" * 40)).json()["data"]["runs"][0]
    # the first run is claimed by a worker and running when the PR gets a new commit
    claim = app.store.queue.claim("test-worker", "host")
    assert claim.run_id == first
    app.store.runs.transition_run(first, "running", started_at=clock.now())
    second = send.github("pull_request", pull_request(21, action="synchronize", sha="3" * 40)).json()["data"]
    assert second["cancelled"] == [first]
    assert (
        app.store.runs.get_run(first).cancel_requested_at is not None
    )  # its worker stops dbt and its warehouse queries
    third = send.github("pull_request", pull_request(21, action="synchronize", sha="4" * 40)).json()["data"]
    # the first is still running until its worker stops it: asked again (idempotent), the second was queued
    assert third["cancelled"] == [first, second["runs"][0]]
    assert _status(app, second["runs"][0]) == "cancelled"  # it was still queued: cancelled at once
    assert _status(app, third["runs"][0]) == "queued" and _status(app, other) == "queued"
    assert app.runs.get(third["runs"][0]).git_sha == "4" * 40


def test_ignored_events_and_actions_record_nothing(app, send):
    for event, payload in (
        ("issues", {"action": "opened"}),
        ("pull_request", pull_request(4, action="labeled")),
        ("pull_request", pull_request(4, action="edited")),
        ("push", {"ref": "refs/heads/main", "after": "5" * 40}),  # no repository: block in the shop
    ):
        response = send.github(event, payload, delivery=f"ignored-{event}-{payload.get('action')}")
        assert response.status_code == 202, response.text
        assert response.json()["data"]["ignored"] is True and response.json()["data"]["reason"]
        assert app.store.webhooks.get("github", f"ignored-{event}-{payload.get('action')}") is None
    assert send.github("ping", {"zen": "hi", "hook_id": 1}).status_code == 200
    assert ci_runs(app) == []
    title_only = send.gitlab("Merge Request Hook", merge_request(4, action="update"))  # no oldrev: no new commits
    assert title_only.status_code == 202
    pushed = send.gitlab("Merge Request Hook", merge_request(4, action="update", sha="6" * 40, oldrev="5" * 40))
    assert pushed.status_code == 200 and len(ci_runs(app, 4)) == 1


def test_a_malformed_signed_payload_is_a_400(app, send):
    assert send.github("pull_request", b"not json").status_code == 400
    assert send.github("pull_request", {"action": "opened", "number": "seven"}).status_code == 400
    assert send.github("pull_request", b"[1, 2]").status_code == 400
    assert ci_runs(app) == []


def test_a_delivery_whose_handler_died_is_taken_over_once(app):
    controller = Controller(app)
    event = PullRequestEvent("github", 31, "opened", "7" * 40, "f", "main")
    # the first handler claimed the delivery and queued the run, then died before marking it done
    old = clock.now() - timedelta(minutes=5)
    assert app.store.webhooks.claim("github", "d-31", "pull_request", now=old).owner
    first = controller.build(event, fire_key("github", "d-31"))
    # a copy arriving while the claim is fresh would be "in progress"; this one finds it stale
    answer = controller.receive("github", "d-31", "pull_request", event)
    assert answer.status == 200 and answer.body["runs"] == first["runs"]  # the same run, not a second one
    assert len(ci_runs(app, 31)) == 1 and _status(app, first["runs"][0]) == "queued"
    assert app.store.webhooks.get("github", "d-31")["state"] == "done"
    assert controller.receive("github", "d-31", "pull_request", event).body["duplicate"] is True
    # a copy while another handler is on it (fresh claim): in progress, nothing done
    assert app.store.webhooks.claim("github", "d-32", "pull_request").owner
    busy = controller.receive(
        "github", "d-32", "pull_request", PullRequestEvent("github", 32, "opened", "8" * 40, None, None)
    )
    assert busy.body == {"duplicate": True, "delivery": "d-32", "in_progress": True} and ci_runs(app, 32) == []


def test_a_failed_handler_releases_the_delivery(app, monkeypatch):
    controller = Controller(app)
    event = PullRequestEvent("github", 41, "opened", "9" * 40, None, None)

    def broken(*args):
        raise RuntimeError("store went away")

    monkeypatch.setattr(controller, "act", broken)
    try:
        controller.receive("github", "d-41", "pull_request", event)
    except RuntimeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("the failure must reach the provider (5xx), so it redelivers")
    assert ci_runs(app, 41) == []
    monkeypatch.undo()
    answer = Controller(app).receive("github", "d-41", "pull_request", event)  # the redelivery acts at once
    assert answer.status == 200 and len(ci_runs(app, 41)) == 1


def test_a_delivery_the_server_cannot_act_on_answers_500_and_is_released(hooked):
    config = hooked / "dockyard.yml"
    config.write_text(config.read_text() + "ci:\n  environment: nowhere\n")
    app = make_app(hooked)
    try:
        with TestClient(create_app(app), base_url="https://testserver") as client:
            response = Sender(client).github("pull_request", pull_request(51), delivery="d-51")
        assert response.status_code == 500 and "nowhere" in response.json()["status"]["user_message"]
        assert app.store.webhooks.get("github", "d-51")["state"] == "pending"
        assert app.store.webhooks.claim("github", "d-51", "pull_request").owner  # the next copy acts at once
    finally:
        app.close()


def test_github_form_encoded_deliveries_are_read(app, send):
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(pull_request(71, sha="7" * 40))}).encode()
    response = send.github("pull_request", body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    [run] = ci_runs(app, 71)
    assert run.git_sha == "7" * 40


def test_without_a_ci_job_nothing_is_queued_nor_cancelled(hooked):
    config = hooked / "dockyard.yml"
    config.write_text(config.read_text().replace("triggers: {github_webhook: true}", "triggers: {}"))
    app = make_app(hooked)
    try:
        api_run = app.triggers.trigger("CI", {"github_pull_request_id": 81})  # e.g. from the dbt Cloud API
        with TestClient(create_app(app), base_url="https://testserver") as client:
            data = Sender(client).github("pull_request", pull_request(81, action="synchronize")).json()["data"]
        assert data["runs"] == [] and data["cancelled"] == [] and "triggers.github_webhook" in data["note"]
        assert app.runs.get(api_run).status.value == "queued"
    finally:
        app.close()
