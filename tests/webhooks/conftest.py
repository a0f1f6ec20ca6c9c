"""Webhook fixtures: the shop with both webhook secrets configured (secret references to
environment variables), its App and API, and a helper that sends a signed delivery."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import make_app

from dockyard.api.app import create_app
from dockyard.ci.webhooks import github_signature

GITHUB_SECRET = "gh-webhook-secret-7f3a9c"
GITLAB_TOKEN = "gl-webhook-token-2b8e41"
HOOKS = """
server:
  github_webhook_secret: env:DOCKYARD_TEST_GITHUB_SECRET
  gitlab_webhook_token: env:DOCKYARD_TEST_GITLAB_TOKEN
"""


def pull_request(number: int, action: str = "opened", sha: str = "a" * 40, ref: str = "feature/x", **pr) -> dict:
    """A GitHub ``pull_request`` payload (the fields dockyard reads, and a few it does not)."""
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "title": "<script>alert(1)</script> @everyone",
            "head": {"sha": sha, "ref": ref},
            "base": {"sha": "b" * 40, "ref": "main"},
            "merged": pr.pop("merged", False),
            **pr,
        },
        "repository": {"full_name": "acme/shop"},
    }


def merge_request(iid: int, action: str = "open", sha: str = "c" * 40, oldrev: str | None = None) -> dict:
    attrs = {"iid": iid, "action": action, "source_branch": "feature/y", "target_branch": "main"}
    attrs["last_commit"] = {"id": sha}
    if oldrev:
        attrs["oldrev"] = oldrev
    return {"object_kind": "merge_request", "event_type": "merge_request", "object_attributes": attrs}


class Sender:
    """Sends deliveries to the API as the providers do."""

    def __init__(self, client: TestClient):
        self.client = client

    def github(self, event: str, data: dict | bytes, *, delivery: str | None = None, secret=GITHUB_SECRET, **headers):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        sent = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/abc123",
        }
        if secret is not None:
            sent["X-Hub-Signature-256"] = github_signature(secret, body)
        sent.update(headers)
        return self.client.post("/api/webhooks/github", content=body, headers=sent)

    def gitlab(self, event: str, data: dict, *, delivery: str | None = None, token=GITLAB_TOKEN, **headers):
        sent = {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4())}
        if token is not None:
            sent["X-Gitlab-Token"] = token
        sent.update(headers)
        return self.client.post("/api/webhooks/gitlab", content=json.dumps(data).encode(), headers=sent)


@pytest.fixture
def hooked(shop: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shop with server.github_webhook_secret and server.gitlab_webhook_token set."""
    monkeypatch.setenv("DOCKYARD_TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("DOCKYARD_TEST_GITLAB_TOKEN", GITLAB_TOKEN)
    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + HOOKS)
    return shop


@pytest.fixture
def app(hooked: Path):
    app = make_app(hooked)
    yield app
    app.close()


@pytest.fixture
def send(app):
    with TestClient(create_app(app), base_url="https://testserver") as client:
        yield Sender(client)


def ci_runs(app, pr: int | None = None) -> list:
    """The runs whose overrides name a GitHub pull request (``pr``: that one)."""
    found, _ = app.runs.search(limit=100, order_by="id")
    out = []
    for run in found:
        number = (run.overrides or {}).get("github_pull_request_id") or (run.overrides or {}).get(
            "gitlab_merge_request_id"
        )
        if number is not None and (pr is None or number == pr):
            out.append(run)
    return out
