"""The webhook routes on a real ``dockyard serve`` (uvicorn over TLS, a real HTTP client): the
signature is checked over the bytes on the wire, a signed delivery queues the CI run, a replay
and a bad signature do not."""

from __future__ import annotations

import json

import pytest
import requests
from tests.api.served import copy_shop, start_server, stop_server
from tests.webhooks.conftest import GITHUB_SECRET, HOOKS, pull_request

from dockyard.ci.webhooks import github_signature

pytestmark = pytest.mark.slow


def test_a_signed_delivery_through_a_real_server(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("DOCKYARD_TEST_GITLAB_TOKEN", "unused-token-value")
    shop = copy_shop(tmp_path)
    (shop / "dockyard.yml").write_text((shop / "dockyard.yml").read_text() + HOOKS)
    served = start_server(shop, tmp_path, workers=0)  # no worker: the run stays queued
    try:
        body = json.dumps(pull_request(5, sha="5" * 40), indent=1).encode()  # as sent: spaces, newlines
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "served-1",
            "X-Hub-Signature-256": github_signature(GITHUB_SECRET, body),
            "Content-Type": "application/json",
        }
        url = f"{served.url}/api/webhooks/github"
        answer = requests.post(url, data=body, headers=headers, verify=str(served.ca), timeout=30)
        assert answer.status_code == 200, answer.text
        [run_id] = answer.json()["data"]["runs"]
        replay = requests.post(url, data=body, headers=headers, verify=str(served.ca), timeout=30)
        assert replay.status_code == 200 and replay.json()["data"]["duplicate"] is True
        tampered = body.replace(b'"number": 5', b'"number": 6')
        refused = requests.post(url, data=tampered, headers=headers, verify=str(served.ca), timeout=30)
        assert refused.status_code == 401
        runs = requests.get(
            f"{served.url}/api/v1/runs", headers=served.headers(), verify=str(served.ca), timeout=30
        ).json()["data"]
        ci = [r for r in runs if r["job"] == "CI"]
        assert [r["id"] for r in ci] == [run_id]
    finally:
        stop_server(served)
