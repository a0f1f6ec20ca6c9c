"""Tokens and authorization: format, digest at rest, scopes, revocation, and the route matrix
built from the app's own routes (a new route is covered, or fails, automatically)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

from fastapi.testclient import TestClient
from tests.api.conftest import job_id, seed_run

from dockyard import tokens as tok
from dockyard.api.app import PUBLIC_PATHS, SIGNED_PATHS, api_routes, create_app, route_scope
from dockyard.domain import RunStatus

NARROWER = {"trigger": "read", "admin": "trigger"}
GITLEAKS_RULE = re.compile(r"\b(dky_[0-9A-Za-z]{49})\b")  # what a scanner rule for our tokens looks like


def test_token_format_and_checksum():
    seen = set()
    for _ in range(200):
        token = tok.generate()
        assert token.startswith("dky_") and len(token) == 53 and tok.well_formed(token)
        assert GITLEAKS_RULE.fullmatch(token) and token not in seen
        seen.add(token)
        body = token[4:-6]
        assert tok.well_formed(token[:-6] + tok._checksum(body))
        assert not tok.well_formed(token[:10] + ("A" if token[10] != "A" else "B") + token[11:])  # one typo
    assert not tok.well_formed("dky_short") and not tok.well_formed("ghp_" + token[4:])
    assert tok.allows("admin", "trigger") and tok.allows("trigger", "read") and not tok.allows("read", "trigger")
    assert tok.redact(f"x {token} y") == f"x {token[:12]}*** y"


def test_cli_prints_the_token_once_and_the_store_keeps_only_digests(shop):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(shop)}
    made = []
    for scope in ("read", "trigger", "admin"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard",
                "tokens",
                "create",
                f"bot-{scope}",
                "--scope",
                scope,
                "--config",
                str(shop / "dockyard.yml"),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=shop,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        last = proc.stdout.strip().splitlines()[-1]
        assert tok.well_formed(last), proc.stdout  # alone on its last line
        made.append(last)
    listing = subprocess.run(
        [sys.executable, "-m", "dockyard", "tokens", "list", "--json", "--config", str(shop / "dockyard.yml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=shop,
        timeout=120,
    )
    assert listing.returncode == 0 and "bot-admin" in listing.stdout
    from dockyard.app import App

    app = App.open(shop / "dockyard.yml")
    for i in range(97):
        made.append(app.store.tokens.create_token(f"many-{i}", "read")[1])
    app.close()
    raw = b"".join(p.read_bytes() for p in (shop / ".dockyard").glob("dockyard.db*"))
    leaked = [t for t in made if t.encode() in raw or t[12:].encode() in raw]
    assert not leaked and len(made) == 100
    assert all(tok.digest(t).encode() in raw for t in made[:3])  # the digests are what is there


def test_scopes_and_revocation_on_the_next_request(app, api, tokens):
    run_id = seed_run(app, status=RunStatus.QUEUED)
    j = job_id(app)
    with TestClient(api) as c:
        read = tokens.header("read")
        assert c.get("/api/v2/accounts/1/runs/", headers=read).status_code == 200
        assert c.post(f"/api/v2/accounts/1/jobs/{j}/run/", headers=read).status_code == 403
        assert c.post(f"/api/v2/accounts/1/runs/{run_id}/cancel/", headers=read).status_code == 403
        assert c.post(f"/api/v1/runs/{run_id}/cancel", headers=read).status_code == 403
        trig = tokens.header("trigger")
        assert c.post(f"/api/v2/accounts/1/jobs/{j}/run/", headers=trig).status_code == 200
        assert c.delete(f"/api/v2/accounts/1/jobs/{j}/", headers=trig).status_code == 403
        assert c.get(f"/api/v1/runs/{run_id}", headers=trig).status_code == 200  # trigger includes read
        app.store.tokens.revoke_token("test-trigger")
        response = c.get(f"/api/v1/runs/{run_id}", headers=trig)
        assert response.status_code == 401 and "revoked" in response.json()["status"]["user_message"]


def test_auth_is_off_until_the_first_token_and_never_again(app):
    api = create_app(app)
    with TestClient(api) as c:
        assert c.get("/api/v1/runs").status_code == 200  # no token exists: loopback-only mode
        assert c.get("/api/v1/runs", headers={"Authorization": "Token whatever"}).status_code == 200
        _, token = app.store.tokens.create_token("first", "read")
        assert c.get("/api/v1/runs").status_code == 401
        app.store.tokens.revoke_token("first")
        assert c.get("/api/v1/runs").status_code == 401  # revoking the last token does not reopen it
    with TestClient(create_app(app, require_auth=True)) as c:
        assert c.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_health_needs_no_token(anon):
    response = anon.get("/api/v1/health")
    assert response.status_code == 200 and response.json()["store"] == {"read": "ok", "write": "ok"}


def test_every_route_has_an_auth_dependency(api):
    routes = list(api_routes(api))
    assert len(routes) >= 35
    unprotected = [p for p, _, r in routes if route_scope(r) is None and p not in PUBLIC_PATHS | SIGNED_PATHS]
    assert not unprotected, f"routes without a token check: {unprotected}"
    documented = set(api.openapi()["paths"])
    missing = [p for p, _, _ in routes if re.sub(r":\w+}", "}", p) not in documented and p != "/api/openapi.json"]
    assert not missing, f"routes missing from OpenAPI: {missing}"


def _concrete(path: str, ids: dict[str, str], foreign: bool) -> tuple[str, bool]:
    """The route's path with real ids (``foreign``: another account's, or unknown, objects)."""
    has_object = False
    out = path
    for name, value in ids.items():
        token = "{" + name + "}"
        if token in out:
            if foreign and name != "path":
                value = "2" if name == "account_id" else "987654"
                has_object = True
            out = out.replace(token, value)
    return out, has_object


def test_route_matrix(app, api, tokens):
    """Every operation × {no token, bad token, revoked, wrong scope, another account's object}
    → 401 / 401 / 401 / 403 / 404."""
    run_id = seed_run(app)
    env = str(app.store.jobs.list_environments()[0]["id"])
    ids = {
        "account_id": "1",
        "run_id": str(run_id),
        "job_id": str(job_id(app)),
        "environment_id": env,
        "project_id": "1",
        "path:path": "run_results.json",
    }
    bad = "dky_" + "A" * 43 + tok._checksum("A" * 43)
    checked = 0
    with TestClient(api, base_url="https://testserver") as c:
        for path, methods, route in api_routes(api):
            if path in PUBLIC_PATHS:
                continue
            if path in SIGNED_PATHS:  # the provider's signature is the auth: never open without one
                for name, (headers, _) in {"no token": ({}, 0), "admin": (tokens.header("admin"), 0)}.items():
                    response = c.post(path, headers=headers, json={})
                    assert response.status_code in (401, 404), f"POST {path} {name}: {response.text}"
                    checked += 1
                continue
            scope = route_scope(route)
            for method in sorted(methods - {"HEAD", "OPTIONS"}):
                url, _ = _concrete(path, ids, foreign=False)
                cases = {
                    "no token": ({}, 401),
                    "malformed": ({"Authorization": "Token nope"}, 401),
                    "bad token": ({"Authorization": f"Token {bad}"}, 401),
                    "revoked": (tokens.header("revoked"), 401),
                }
                if scope in NARROWER:
                    cases["wrong scope"] = (tokens.header(NARROWER[scope]), 403)
                for name, (headers, code) in cases.items():
                    response = c.request(method, url, headers=headers, json={})
                    assert response.status_code == code, f"{method} {url} {name}: {response.text}"
                    assert response.json()["data"] is None
                    checked += 1
                foreign, has_object = _concrete(path, ids, foreign=True)
                if has_object:
                    response = c.request(method, foreign, headers=tokens.header("admin"), json={})
                    assert response.status_code == 404, f"{method} {foreign}: {response.text}"
                    assert response.json()["data"] is None
                    checked += 1
    assert checked > 150


def test_tokens_never_reach_the_logs(app, api, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(api, raise_server_exceptions=False) as c:
        for header in (tokens.header("admin"), tokens.header("revoked"), tokens.header("read", "Bearer")):
            c.get("/api/v2/accounts/1/runs/", headers=header)
            c.post("/api/v2/accounts/1/jobs/1/run/", headers=header, json={"cause": tokens.admin})
    logging.getLogger("dockyard.test").warning("a client sent %s", tokens.admin)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in (tokens.admin, tokens.read, tokens.revoked):
        assert secret not in text
    assert tokens.admin[:12] + "***" in text


def test_rate_limit_answers_429_with_retry_after(app, tokens):
    api = create_app(app, request_rate=60, trigger_rate=2)
    j = job_id(app)
    with TestClient(api) as c:
        codes = [
            c.post(f"/api/v2/accounts/1/jobs/{j}/run/", headers=tokens.header("trigger")).status_code for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        limited = c.post(f"/api/v2/accounts/1/jobs/{j}/run/", headers=tokens.header("trigger"))
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["data"] is None
        assert c.post(f"/api/v2/accounts/1/jobs/{j}/run/", headers=tokens.header("admin")).status_code == 200
        statuses = [c.get("/api/v1/jobs", headers=tokens.header("read")).status_code for _ in range(15)]
        assert 429 in statuses and statuses[0] == 200
        assert c.get("/api/v1/jobs", headers=tokens.header("admin")).status_code == 200  # other tokens unaffected
