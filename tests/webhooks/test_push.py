"""A push to the deploy branch (real git: a bare repository on disk as the remote) deploys the
pushed commit and runs the ``on_merge`` jobs on it; a commit whose dockyard.yml does not
validate is refused (200, the located error in the answer) and the last good jobs stay."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.repository.conftest import Remote, git, server_folder, tiny_project
from tests.webhooks.conftest import GITHUB_SECRET, GITLAB_TOKEN, Sender, pull_request

from dockyard.api.app import create_app
from dockyard.app import App

ON_MERGE = """\
  - name: Deploy
    environment: dev
    commands: ["dbt run"]
    triggers: {on_merge: true}
  - name: PR
    environment: dev
    commands: ["dbt build"]
    triggers: {github_webhook: true}
ci: {environment: dev}
"""
HOOKS = """\
server:
  github_webhook_secret: env:DOCKYARD_TEST_GITHUB_SECRET
  gitlab_webhook_token: env:DOCKYARD_TEST_GITLAB_TOKEN
"""


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("DOCKYARD_TEST_GITLAB_TOKEN", GITLAB_TOKEN)
    monkeypatch.setenv("TINY_DB", str(tmp_path))
    monkeypatch.delenv("DOCKYARD_STORE_URL", raising=False)
    remote = Remote(tmp_path)
    first = remote.commit(tiny_project(1, ON_MERGE), "first")
    folder = server_folder(tmp_path, str(remote.bare), HOOKS)
    app = App.open(folder / "dockyard.yml")
    assert app.deploy()["status"] == "ok" and app.repository.deployed() == first
    with TestClient(create_app(app), base_url="https://testserver") as client:
        yield remote, app, Sender(client)
    app.close()


def _runs(app, job: str) -> list:
    found, _ = app.runs.search(limit=100, order_by="id")
    return [r for r in found if r.job == job]


def test_a_push_deploys_then_runs_the_on_merge_jobs_and_a_bad_commit_is_refused(served):
    remote, app, send = served
    second = remote.commit(tiny_project(2, ON_MERGE), "second")
    response = send.github("push", {"ref": "refs/heads/main", "after": second}, delivery="push-2")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["deploy"] == "ok" and data["sha"] == second
    assert app.repository.deployed() == second
    [run] = _runs(app, "Deploy")
    assert data["runs"] == [run.id] and run.git_sha == second and run.git_branch == "main"
    assert _runs(app, "Build") == []  # only the on_merge jobs run
    again = send.github("push", {"ref": "refs/heads/main", "after": second}, delivery="push-2")
    assert again.json()["data"]["duplicate"] is True and len(_runs(app, "Deploy")) == 1

    broken = tiny_project(
        3,
        ON_MERGE.replace(
            'environment: dev\n    commands: ["dbt run"]', 'environment: nowhere\n    commands: ["dbt run"]'
        ),
    )
    third = remote.commit(broken, "an invalid dockyard.yml")
    response = send.github("push", {"ref": "refs/heads/main", "after": third}, delivery="push-3")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["deploy"] == "refused" and data["sha"] == third
    assert "nowhere" in data["error"] and "dockyard.yml" in data["error"]  # located
    assert app.repository.deployed() == second  # the last good commit stays in force
    assert {v.name for v in app.jobs.list()} == {"Build", "Deploy", "PR"}
    assert len(_runs(app, "Deploy")) == 1  # nothing ran on the refused commit

    other = remote.commit(tiny_project(4, ON_MERGE), "elsewhere", branch="feature")
    ignored = send.github("push", {"ref": "refs/heads/feature", "after": other})
    assert ignored.status_code == 202 and app.repository.deployed() == second
    deleted = send.github("push", {"ref": "refs/heads/main", "after": "0" * 40, "deleted": True})
    assert deleted.status_code == 202

    fourth = remote.commit(tiny_project(5, ON_MERGE), "fixed")  # GitLab's push hook does the same
    response = send.gitlab("Push Hook", {"object_kind": "push", "ref": "refs/heads/main", "after": fourth})
    assert response.status_code == 200 and response.json()["data"]["deploy"] == "ok"
    assert app.repository.deployed() == fourth and len(_runs(app, "Deploy")) == 2


def test_a_pr_from_a_fork_is_fetched_by_its_pull_ref(served):
    remote, app, send = served
    # a commit reachable only through refs/pull/9/head (as GitHub keeps a fork's PR head)
    sha = remote.commit(tiny_project(9, ON_MERGE), "from a fork", branch="fork-tmp")
    remote.push_ref("refs/pull/9/head")
    git("push", "--quiet", str(remote.bare), ":refs/heads/fork-tmp", cwd=remote.work)
    assert app.repository.repo.resolve(sha) is None
    response = send.github("pull_request", pull_request(9, sha=sha, ref="fork-tmp"))
    assert response.status_code == 200, response.text
    assert app.repository.repo.resolve(sha) == sha  # in the cached clone before the run starts
    [run_id] = response.json()["data"]["runs"]
    assert app.runs.get(run_id).git_sha == sha


def test_a_polled_new_head_is_deployed_and_its_on_merge_jobs_run_once(served):
    """repository.poll_seconds: the scheduler's PollRepository duty deploys a new head of the
    branch and queues the on_merge jobs on it, as a push webhook does, once per commit."""
    from dockyard.clock import now
    from dockyard.server.duties import PollRepository, Tick, TickReport

    remote, app, _ = served
    app.config.repository.poll_seconds = 1  # the served config polls never
    duty = PollRepository(app)
    second = remote.commit(tiny_project(2, ON_MERGE), "second")
    duty.run(Tick(now(), TickReport(), {}))
    assert app.repository.deployed() == second
    [run] = _runs(app, "Deploy")
    assert run.git_sha == second and run.git_branch == "main"
    duty._next = 0.0
    duty.run(Tick(now(), TickReport(), {}))  # nothing new on the branch: nothing queued again
    assert len(_runs(app, "Deploy")) == 1


def test_a_late_delivery_of_an_older_push_neither_builds_nor_cancels_the_newer_run(served):
    """Deliveries are not ordered: the ``synchronize`` of the PR's first push arriving after
    the second's must not queue the old sha nor cancel the new head's run; an event for a
    commit that is not behind the head (a force push) still builds."""
    remote, app, send = served
    old = remote.commit(tiny_project(11, ON_MERGE), "pr: first", branch="feature-late")
    new = remote.commit(tiny_project(12, ON_MERGE), "pr: second", branch="feature-late")
    remote.push_ref("refs/pull/11/head")  # refs/pull/11/head is the second commit
    first = send.github("pull_request", pull_request(11, action="synchronize", sha=new, ref="feature-late"))
    assert first.status_code == 200, first.text
    [newer] = first.json()["data"]["runs"]
    late = send.github("pull_request", pull_request(11, action="synchronize", sha=old, ref="feature-late"))
    assert late.status_code == 200, late.text
    body = late.json()["data"]
    assert body["stale"] is True and body["runs"] == [] and body["cancelled"] == [] and body["head_sha"] == new
    assert app.runs.get(newer).status.value == "queued"
    # a force push rewrites the PR: its new head (a sibling of the old commits) builds, and
    # the run of the replaced head is cancelled
    git("checkout", "--quiet", "--detach", old, cwd=remote.work)
    forced = remote.commit(tiny_project(13, ON_MERGE), "pr: rewritten", branch="feature-forced")
    git("push", "--quiet", "--force", str(remote.bare), "HEAD:refs/pull/11/head", cwd=remote.work)
    assert not app.repository.is_ancestor(new, forced)
    again = send.github("pull_request", pull_request(11, action="synchronize", sha=forced, ref="feature-forced"))
    assert again.status_code == 200, again.text
    [latest] = again.json()["data"]["runs"]
    assert again.json()["data"]["cancelled"] == [newer] and app.runs.get(latest).git_sha == forced
