"""GitLab's signing token (Standard Webhooks): the specification's test vector, signed
deliveries accepted, stale / mutated / token-only ones refused with no run queued."""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import make_app
from tests.webhooks.conftest import GITLAB_TOKEN, ci_runs, merge_request

from dockyard.api.app import create_app
from dockyard.ci import webhooks as wh

# the Standard Webhooks reference libraries' test vector
VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": "1614265330",
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
SIGNING = "glsigning-" + "k" * 24


def test_standard_webhooks_vector():
    v = VECTOR
    assert wh.standard_signature(v["secret"], v["id"], v["timestamp"], v["body"]) == v["signature"]
    headers = {"webhook-id": v["id"], "webhook-timestamp": v["timestamp"], "webhook-signature": v["signature"]}
    wh.verify_standard(v["secret"], headers, v["body"], now=int(v["timestamp"]) + 10)
    # several signatures (a key rotation): one valid is enough
    rotated = {**headers, "webhook-signature": "v1,AAAA " + v["signature"]}
    wh.verify_standard(v["secret"], rotated, v["body"], now=int(v["timestamp"]))
    for now in (int(v["timestamp"]) + 301, int(v["timestamp"]) - 301):  # outside the replay window
        with pytest.raises(wh.SignatureError):
            wh.verify_standard(v["secret"], headers, v["body"], now=now)
    with pytest.raises(wh.SignatureError):
        wh.verify_standard(v["secret"], headers, v["body"] + b" ", now=int(v["timestamp"]))


def _signed(body: bytes, *, secret: str = SIGNING, stamp: int | None = None) -> dict[str, str]:
    msg_id, ts = f"msg_{uuid.uuid4().hex}", str(int(time.time()) if stamp is None else stamp)
    return {
        "X-Gitlab-Event": "Merge Request Hook",
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": wh.standard_signature(secret, msg_id, ts, body),
        "Content-Type": "application/json",
    }


@pytest.fixture
def signed_client(shop, monkeypatch):
    monkeypatch.setenv("DOCKYARD_TEST_GITLAB_TOKEN", GITLAB_TOKEN)
    monkeypatch.setenv("DOCKYARD_TEST_GITLAB_SIGNING", SIGNING)
    config = shop / "dockyard.yml"
    config.write_text(
        config.read_text()
        + "\nserver:\n  gitlab_webhook_token: env:DOCKYARD_TEST_GITLAB_TOKEN\n"
        + "  gitlab_webhook_signing_token: env:DOCKYARD_TEST_GITLAB_SIGNING\n"
    )
    app = make_app(shop)
    with TestClient(create_app(app), base_url="https://testserver") as client:
        yield app, client
    app.close()


def test_signed_gitlab_deliveries(signed_client):
    app, client = signed_client
    body = json.dumps(merge_request(7)).encode()
    # the secret token alone is not enough once a signing token is configured
    token_only = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": GITLAB_TOKEN}
    assert client.post("/api/webhooks/gitlab", content=body, headers=token_only).status_code == 401
    stale = _signed(body, stamp=int(time.time()) - 600)
    assert client.post("/api/webhooks/gitlab", content=body, headers=stale).status_code == 401
    wrong = _signed(body, secret=SIGNING + "x")
    assert client.post("/api/webhooks/gitlab", content=body, headers=wrong).status_code == 401
    rng = random.Random(7)
    for _ in range(50):  # one byte of the body changed after signing
        headers = _signed(body)
        i = rng.randrange(len(body))
        mutated = body[:i] + bytes([(body[i] + rng.randrange(1, 256)) % 256]) + body[i + 1 :]
        assert client.post("/api/webhooks/gitlab", content=mutated, headers=headers).status_code in (400, 401)
    assert ci_runs(app) == []
    good = _signed(body)
    first = client.post("/api/webhooks/gitlab", content=body, headers=good)
    assert first.status_code == 200, first.text
    # webhook-id identifies the delivery: the same signed delivery re-sent is a duplicate
    again = client.post("/api/webhooks/gitlab", content=body, headers=good)
    assert again.json()["data"]["duplicate"] is True
    assert len(ci_runs(app, 7)) == 1
