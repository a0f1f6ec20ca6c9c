"""Goals R7, S6, S7: idempotent triggers, read-only fields never stored, body and list limits,
loopback by default."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.api.conftest import job_id, seed_run

from dockyard.api.app import create_app

V2 = "/api/v2/accounts/1"


def test_idempotency_key_returns_the_same_run(client, app, tokens):
    j = job_id(app)
    url = f"{V2}/jobs/{j}/run/"
    first = client.post(url, json={"cause": "a"}, headers={"Idempotency-Key": "k-1"}).json()["data"]
    again = client.post(url, json={"cause": "a"}, headers={"Idempotency-Key": "k-1"}).json()["data"]
    assert again["id"] == first["id"]
    form = client.post(url, data={"cause": "a"}, headers={"Idempotency-Key": "k-1"})
    assert form.json()["data"]["id"] == first["id"]  # same request, other encoding
    other = client.post(url, json={"cause": "b"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and other.json()["data"] is None
    assert "different request" in other.json()["status"]["user_message"]
    theirs = client.post(url, json={"cause": "a"}, headers={**tokens.header("trigger"), "Idempotency-Key": "k-1"})
    assert theirs.json()["data"]["id"] != first["id"]  # keys are per token
    without = client.post(url, json={"cause": "a"}).json()["data"]
    assert without["id"] not in (first["id"], theirs.json()["data"]["id"])
    assert app.store.runs.count_runs() == 3
    bad = client.post(url, json={}, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 400


def test_a_failed_request_releases_its_key(client, app):
    url = f"{V2}/jobs/{job_id(app)}/run/"
    assert client.post(url, json={"steps_override": ["ls"]}, headers={"Idempotency-Key": "k"}).status_code == 400
    ok = client.post(url, json={"steps_override": ["ls"]}, headers={"Idempotency-Key": "k"})
    assert ok.status_code == 400  # validation happens before the key is taken, every time
    assert client.post(url, json={}, headers={"Idempotency-Key": "k"}).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_fifty_concurrent_retries_make_one_run(shop, tokens_factory, backend):
    app, header = tokens_factory(backend)
    api = create_app(app, trigger_rate=1000)
    url = f"{V2}/jobs/{job_id(app)}/run/"
    with TestClient(api) as c:

        def post(_):
            return c.post(url, json={"cause": "retry storm"}, headers={**header, "Idempotency-Key": "storm-1"})

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(post, range(50)))
    codes = {r.status_code for r in responses}
    assert codes <= {200, 409}, codes
    ids = {r.json()["data"]["id"] for r in responses if r.status_code == 200}
    assert len(ids) == 1
    assert app.store.runs.count_runs() == 1
    app.close()


@pytest.fixture
def tokens_factory(shop, request):
    def make(backend: str):
        from tests.api.conftest import make_app

        url = request.getfixturevalue("pg_database_factory")() if backend == "postgresql" else None
        app = make_app(shop, url)
        _, token = app.store.tokens.create_token("storm", "trigger")
        return app, {"Authorization": f"Token {token}"}

    return make


def test_request_body_size_limit_is_413(client, app):
    url = f"{V2}/jobs/{job_id(app)}/run/"
    big = client.post(
        url, content=b"{" + b" " * (1024 * 1024 + 10) + b"}", headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 413 and big.json()["data"] is None

    def chunks():
        for _ in range(20):
            yield b" " * 65536

    streamed = client.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert app.store.runs.count_runs() == 0


def test_limit_is_capped_at_100_everywhere(client, app):
    for url in (f"{V2}/runs/", f"{V2}/jobs/", "/api/v3/accounts/1/projects/", "/api/v1/runs"):
        body = client.get(url, params={"limit": 100000}).json()
        assert body["extra"]["filters"]["limit"] == 100, url
    assert client.get(f"{V2}/runs/", params={"limit": 0}).json()["extra"]["filters"]["limit"] == 1
    assert client.get(f"{V2}/runs/", params={"offset": -1}).status_code == 400


# any text a store can hold (NUL and lone surrogates are refused in every body field: test_payload.py)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
PROTECTED = {
    "id": st.integers(),
    "account_id": st.integers(),
    "project_id": st.integers(),
    "state": st.integers(),
    "created_at": TEXT,
    "updated_at": TEXT,
    "is_system": st.booleans(),
    "deactivated": st.booleans(),
    "next_run": TEXT,
    "run_failure_count": st.integers(),
    "generate_sources": st.booleans(),
    "raw_dbt_version": TEXT,
    "account": st.dictionaries(TEXT, st.integers()),
    "most_recent_run": st.none() | st.integers(),
    "digest": TEXT,
    "custom_environment_variables": st.lists(st.dictionaries(TEXT, TEXT)),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.fixed_dictionaries({}, optional=PROTECTED))
def test_read_only_fields_are_never_stored(client, app, extra):
    env = app.store.jobs.list_environments()[0]["id"]
    before = {k: v for k, v in app.store.jobs.job_rows(active_only=False)[0].items() if k != "definition"}
    created = client.post(
        f"{V2}/jobs/", json={**extra, "name": f"prop {len(app.store.jobs.job_rows())}", "environment_id": env}
    )
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["account_id"] == 1 and data["project_id"] == 1 and data["state"] == 1
    assert data["is_system"] is False and data["deactivated"] is False and data["run_failure_count"] == 0
    assert "custom_environment_variables" not in data
    stored = app.store.jobs.get_job(data["id"]).definition["cloud"]
    assert not set(PROTECTED) & set(stored)
    updated = client.post(f"{V2}/jobs/{data['id']}/", json={**extra, "description": "changed"}).json()["data"]
    assert updated["id"] == data["id"] and updated["state"] == 1 and updated["created_at"] == data["created_at"]
    assert not set(PROTECTED) & set(app.store.jobs.get_job(data["id"]).definition["cloud"])
    after = {k: v for k, v in app.store.jobs.job_rows(active_only=False)[0].items() if k != "definition"}
    assert before == after  # another job untouched


def test_runs_are_not_writable_through_bodies(client, app):
    run_id = seed_run(app)
    client.post(f"{V2}/runs/{run_id}/cancel/", json={"status": 10, "id": 5, "finished_at": None})
    run = app.store.runs.get_run(run_id)
    assert run.id == run_id and run.finished_at is not None


def test_serve_refuses_a_public_address_without_tokens(shop):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
            "--config",
            str(shop / "dockyard.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "refusing to listen on 0.0.0.0" in proc.stderr and "dockyard tokens create" in proc.stderr


def test_default_bind_is_loopback(app):
    assert app.config.server.host == "127.0.0.1"


def test_an_unreachable_store_is_a_503_that_does_not_name_it(app, api, tokens):
    from dockyard.store import Store

    good = app.store
    app.__dict__["store"] = Store("postgresql://dockyard:hunter2@127.0.0.1:1/nowhere?connect_timeout=2")
    try:
        with TestClient(api, base_url="https://testserver", headers=tokens.header("read")) as c:
            for path in ("/api/v1/runs", "/api/v2/accounts/1/runs/", "/api/v1/health"):
                r = c.get(path)
                assert r.status_code == 503, (path, r.text)
                assert r.headers["retry-after"] == "5"
                assert "127.0.0.1:1" not in r.text and "hunter2" not in r.text and "nowhere" not in r.text
            assert c.get("/api/v1/health").json() == {
                "status": "unavailable",
                "store": {"read": "unreachable", "write": "unreachable"},
            }
            assert c.get("/api/v1/runs").json()["status"]["user_message"] == "The run store is unavailable; retry later"
    finally:
        app.__dict__["store"].close()
        app.__dict__["store"] = good
