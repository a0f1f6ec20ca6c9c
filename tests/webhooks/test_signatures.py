"""Goal S1: inbound webhooks are authentic and unreplayable. GitHub's documented test vector,
1,000 mutations of a valid delivery (none accepted, nothing recorded, no run), the comparison
through hmac.compare_digest, GitLab's token, and invalid / missing / replayed deliveries
leaving no run behind."""

from __future__ import annotations

import hmac
import json
import logging
import random
import uuid

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import make_app
from tests.webhooks.conftest import GITHUB_SECRET, GITLAB_TOKEN, ci_runs, merge_request, pull_request

from dockyard.api.app import create_app
from dockyard.ci import webhooks as wh

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_PAYLOAD = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_test_vector():
    assert wh.github_signature(VECTOR_SECRET, VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    wh.verify_github(VECTOR_SECRET, VECTOR_PAYLOAD, VECTOR_SIGNATURE)  # accepted
    for bad in (VECTOR_SIGNATURE.upper(), VECTOR_SIGNATURE[:-1] + "f", VECTOR_SIGNATURE[7:], "sha1=" + "0" * 40):
        with pytest.raises(wh.SignatureError):
            wh.verify_github(VECTOR_SECRET, VECTOR_PAYLOAD, bad)
    with pytest.raises(wh.SignatureError):
        wh.verify_github(VECTOR_SECRET, VECTOR_PAYLOAD + b" ", VECTOR_SIGNATURE)


def _mutations(body: bytes, headers: dict[str, str], rng: random.Random, count: int):
    """``count`` deliveries, each differing from the valid one by one byte of the body or one
    change of a header (the signature, its name, the secret it was made with)."""
    signature = headers["X-Hub-Signature-256"]
    for i in range(count):
        h = dict(headers)
        b = body
        kind = i % 8
        if kind in (0, 1, 2):  # one byte of the body replaced, inserted or deleted
            at = rng.randrange(len(body))
            if kind == 0:
                b = body[:at] + bytes([(body[at] + rng.randrange(1, 256)) % 256]) + body[at + 1 :]
            elif kind == 1:
                b = body[:at] + bytes([rng.randrange(256)]) + body[at:]
            else:
                b = body[:at] + body[at + 1 :]
        elif kind == 3:  # one character of the signature changed
            at = rng.randrange(len("sha256="), len(signature))
            choices = [c for c in "0123456789abcdefABCDEF" if c != signature[at]]
            h["X-Hub-Signature-256"] = signature[:at] + rng.choice(choices) + signature[at + 1 :]
        elif kind == 4:  # truncated, extended, or another algorithm's prefix
            h["X-Hub-Signature-256"] = rng.choice(
                [signature[: rng.randrange(len(signature))], signature + "0", "sha1=" + signature[7:47], signature[7:]]
            )
        elif kind == 5:  # the header missing, or only the legacy sha1 one sent
            del h["X-Hub-Signature-256"]
            if rng.random() < 0.5:
                h["X-Hub-Signature"] = "sha1=" + hmac.new(GITHUB_SECRET.encode(), body, "sha1").hexdigest()
        elif kind == 6:  # signed with a secret one byte off
            at = rng.randrange(len(GITHUB_SECRET))
            wrong = GITHUB_SECRET[:at] + chr(ord(GITHUB_SECRET[at]) ^ 1) + GITHUB_SECRET[at + 1 :]
            h["X-Hub-Signature-256"] = wh.github_signature(wrong, body)
        else:  # the valid signature of another body
            h["X-Hub-Signature-256"] = wh.github_signature(GITHUB_SECRET, body + b"\n")
        yield b, h


def test_one_thousand_mutations_of_a_valid_delivery_are_all_refused(app):
    body = json.dumps(pull_request(7, sha="d" * 40)).encode()
    headers = {
        "X-GitHub-Event": "pull_request",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": wh.github_signature(GITHUB_SECRET, body),
    }
    rng = random.Random(20261202)
    accepted = []
    codes: dict[int, int] = {}
    with TestClient(create_app(app), base_url="https://testserver") as client:
        for n, (b, h) in enumerate(_mutations(body, headers, rng, 1000)):
            try:  # in process, as the route does
                wh.verify_github(GITHUB_SECRET, b, h.get("X-Hub-Signature-256"))
                accepted.append(("verify", n))
            except wh.SignatureError:
                pass
            if n % 4 == 0:  # and a quarter of them through the API
                response = client.post(
                    "/api/webhooks/github", content=b, headers={**h, "X-GitHub-Delivery": str(uuid.uuid4())}
                )
                codes[response.status_code] = codes.get(response.status_code, 0) + 1
                if response.status_code != 401:
                    accepted.append(("api", n, response.status_code))
        assert not accepted
        assert codes == {401: 250}
        assert ci_runs(app) == []  # no side effect at all
        ok = client.post("/api/webhooks/github", content=body, headers={**headers, "X-GitHub-Delivery": "real-1"})
        assert ok.status_code == 200 and len(ci_runs(app, 7)) == 1  # the unmutated one is accepted


def test_the_comparison_goes_through_compare_digest(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    wh.verify_github(VECTOR_SECRET, VECTOR_PAYLOAD, VECTOR_SIGNATURE)
    with pytest.raises(wh.SignatureError):
        wh.verify_github(VECTOR_SECRET, VECTOR_PAYLOAD, VECTOR_SIGNATURE[:-1] + "0")
    assert calls == [
        (VECTOR_SIGNATURE[7:].encode(),) * 2,
        (VECTOR_SIGNATURE[7:].encode(), VECTOR_SIGNATURE[7:-1].encode() + b"0"),
    ]
    calls.clear()
    wh.verify_gitlab(GITLAB_TOKEN, GITLAB_TOKEN)
    with pytest.raises(wh.SignatureError):
        wh.verify_gitlab(GITLAB_TOKEN, GITLAB_TOKEN + "x")
    assert calls == [(GITLAB_TOKEN.encode(),) * 2, (GITLAB_TOKEN.encode(), (GITLAB_TOKEN + "x").encode())]


def test_invalid_missing_and_replayed_deliveries_queue_no_run(app, send, caplog):
    caplog.set_level(logging.DEBUG)
    canary = "CANARY-" + uuid.uuid4().hex
    payload = pull_request(3, ref=canary)
    bad = send.github("pull_request", payload, secret="not-the-secret")
    missing = send.github("pull_request", payload, secret=None)
    assert (bad.status_code, missing.status_code) == (401, 401)
    assert bad.json()["data"] is None and "signature" in bad.json()["status"]["user_message"].lower()
    assert bad.headers.get("www-authenticate")
    assert ci_runs(app) == []
    assert app.store.webhooks.get("github", "x") is None
    assert "github webhook from" in caplog.text and canary not in caplog.text  # logged, without the body
    assert GITHUB_SECRET not in caplog.text

    first = send.github("pull_request", payload, delivery="delivery-3")
    assert first.status_code == 200, first.text
    [run_id] = first.json()["data"]["runs"]
    for _ in range(3):  # a replay of the same delivery: a duplicate, nothing done
        again = send.github("pull_request", payload, delivery="delivery-3")
        assert again.status_code == 200 and again.json()["data"] == {"duplicate": True, "delivery": "delivery-3"}
    assert [r.id for r in ci_runs(app, 3)] == [run_id]
    assert app.runs.get(run_id).status.value == "queued"  # a replay does not cancel it either


def test_gitlab_token_and_delivery_ids(app, send):
    data = merge_request(5)
    assert send.gitlab("Merge Request Hook", data, token=None).status_code == 401
    assert send.gitlab("Merge Request Hook", data, token=GITLAB_TOKEN[:-1]).status_code == 401
    assert send.gitlab("Merge Request Hook", data, token=GITLAB_TOKEN + " ").status_code == 401
    assert ci_runs(app) == []
    first = send.gitlab("Merge Request Hook", data, delivery="gl-1")
    assert first.status_code == 200, first.text
    assert send.gitlab("Merge Request Hook", data, delivery="gl-1").json()["data"]["duplicate"] is True
    [run] = ci_runs(app, 5)
    assert run.overrides["gitlab_merge_request_id"] == 5 and run.git_sha == "c" * 40
    # without any delivery id header, an identical re-send is still one delivery (a digest of it)
    client = send.client
    body = json.dumps(merge_request(6)).encode()
    headers = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": GITLAB_TOKEN}
    assert client.post("/api/webhooks/gitlab", content=body, headers=headers).status_code == 200
    again = client.post("/api/webhooks/gitlab", content=body, headers=headers)
    assert again.json()["data"]["duplicate"] is True and len(ci_runs(app, 6)) == 1


def test_not_configured_answers_404_and_a_file_secret_works(shop, monkeypatch, tmp_path):
    app = make_app(shop)  # no webhook secrets at all
    try:
        with TestClient(create_app(app), base_url="https://testserver") as client:
            body = json.dumps(pull_request(1)).encode()
            signed = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p", "X-Hub-Signature-256": "sha256=" + "0" * 64}
            response = client.post("/api/webhooks/github", content=body, headers=signed)
            assert response.status_code == 404 and "github_webhook_secret" in response.json()["status"]["user_message"]
            assert client.post("/api/webhooks/gitlab", content=b"{}").status_code == 404
    finally:
        app.close()
    secret_file = tmp_path / "gh.secret"
    secret_file.write_text(GITHUB_SECRET + "\n")
    config = shop / "dockyard.yml"
    config.write_text(config.read_text() + f"\nserver:\n  github_webhook_secret: file:{secret_file}\n")
    app = make_app(shop)
    try:
        with TestClient(create_app(app), base_url="https://testserver") as client:
            body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
            headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p1"}
            good = {**headers, "X-Hub-Signature-256": wh.github_signature(GITHUB_SECRET, body)}
            assert client.post("/api/webhooks/github", content=body, headers=good).json()["data"]["event"] == "ping"
            secret_file.write_text("rotated-secret-value\n")  # read on every delivery: rotation needs no restart
            assert client.post("/api/webhooks/github", content=body, headers=good).status_code == 401
            monkeypatch.delenv("DOCKYARD_TEST_GITHUB_SECRET", raising=False)
            secret_file.unlink()  # unreadable: 503, the located error in the log only
            response = client.post("/api/webhooks/github", content=body, headers=good)
            assert response.status_code == 503 and str(secret_file) not in response.text
    finally:
        app.close()


def test_an_oversized_delivery_is_refused_before_anything(app, send):
    big = json.dumps({**pull_request(9), "padding": "x" * (1024 * 1024)}).encode()
    response = send.github("pull_request", big)  # validly signed, but over the 1 MiB bound
    assert response.status_code == 413 and response.json()["data"] is None
    assert ci_runs(app) == []


def test_a_signed_body_nested_too_deeply_is_a_400_with_no_side_effect(app, send):
    """Signed, so it is read: the bounded JSON reader (dockyard.payload) refuses it (400) where
    json.loads would raise RecursionError (a 500)."""
    for depth in (40, 5000):
        body = ('{"action": "opened", "x": ' + "[" * depth + "]" * depth + "}").encode()
        response = send.github("pull_request", body)
        assert response.status_code == 400, response.text
        assert "nested too deeply" in response.json()["status"]["user_message"]
    assert ci_runs(app) == []
