"""Web UI auth over a real SQLite store: the open mode, login by API token and by user and
password, throttling, logout, cookie flags, CSRF and same-origin checks, scopes (a read
user has no buttons and its forged POST is refused), sessions ended by a revocation or a
deletion, ``next`` kept local, and the ``dockyard users`` CLI."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest
from tests.ui.conftest import DAILY, browser, csrf_of, seed_run
from typer.testing import CliRunner

from dockyard.cli.main import cli
from dockyard.domain import RunStatus

PASSWORD = "correct horse battery staple"


def login(client, **fields) -> object:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf_token": token, **fields})


def session_cookie(response) -> str:
    header = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "dockyard_session=" in v)
    return header


def runs(app) -> int:
    return app.store.reader.runs.count_runs()


@pytest.fixture
def locked(ui_app):
    """Login on: an admin token exists, and users of each scope."""
    _, token = ui_app.tokens.create("ops", "admin")
    for scope in ("read", "trigger"):
        ui_app.users.create(f"{scope}-user", PASSWORD, scope)
    return token


def test_open_mode_is_an_anonymous_admin_with_csrf(client, ui_app):
    page = client.get(f"/jobs/{ui_app.job(DAILY)[0].id}")
    assert page.status_code == 200 and "Trigger run" in page.text and "Log out" not in page.text
    cookie = page.headers["set-cookie"]
    assert "dockyard_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback


def test_pages_redirect_to_login_and_json_answers_401(site, locked):
    with browser(site) as client:
        response = client.get("/jobs?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=" + quote("/jobs?x=1", safe="")
        assert client.get("/").status_code == 303
        live = client.get("/live/dashboard", headers={"Accept": "application/json"})
        assert live.status_code == 401 and live.json()["status"]["is_success"] is False
        # an API client's token works on the live endpoint
        live = client.get("/live/dashboard", headers={"Accept": "*/*", "Authorization": f"Token {locked}"})
        assert live.status_code == 200


def test_login_by_token_keeps_only_the_cookies_digest(site, ui_app, locked):
    with browser(site) as client:
        response = login(client, token=locked, next="/jobs")
        assert response.status_code == 303 and response.headers["location"] == "/jobs"
        cookie = session_cookie(response)
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        value = client.cookies["dockyard_session"]
        page = client.get("/jobs")
        assert page.status_code == 200 and "ops" in page.text and "Log out" in page.text
    session = ui_app.users.resolve_session(value)
    assert session.kind == "token" and session.scope == "admin" and session.name == "ops"
    with ui_app.store.engine.connect() as conn:
        rows = conn.exec_driver_sql("select * from ui_sessions").fetchall()
    assert len(rows) == 1 and hashlib.sha256(value.encode()).hexdigest() in rows[0]
    assert not any(value in str(col) for col in rows[0])


def test_secure_cookie_under_https(site, locked):
    with browser(site, base_url="https://dockyard.example") as client:
        response = login(client, token=locked)
        assert "Secure" in session_cookie(response)
        assert client.get("/jobs").status_code == 200


def test_login_by_password_and_wrong_password(site, ui_app, locked):
    with browser(site) as client:
        wrong = login(client, name="read-user", password="not the password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert "dockyard_session" not in client.cookies
        unknown = login(client, name="nobody", password=PASSWORD)
        assert unknown.status_code == 401 and "Wrong name or password" in unknown.text
        bad_token = login(client, token="dky_" + "a" * 49)
        assert bad_token.status_code == 401
        ok = login(client, name="read-user", password=PASSWORD, next="/workers")
        assert ok.status_code == 303 and ok.headers["location"] == "/workers"
        assert client.get("/workers").status_code == 200
        assert PASSWORD not in client.get("/workers").text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_next_must_be_a_local_path(site, locked, target):
    with browser(site) as client:
        response = login(client, token=locked, next=target)
        assert response.status_code == 303 and response.headers["location"] == "/"


def test_login_is_throttled_per_name_and_per_address(site, locked):
    with browser(site) as client:
        codes = [login(client, name="trigger-user", password="wrong password").status_code for _ in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429
        throttled = login(client, name="trigger-user", password=PASSWORD)  # even the right password waits
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert "dockyard_session" not in client.cookies
        # another name from the same address still gets its tries, up to the address's burst
        codes = [login(client, name=f"u{i}", password="wrong password").status_code for i in range(6)]
        assert 429 in codes


def test_logout_ends_the_session(site, ui_app, locked):
    with browser(site) as client:
        login(client, token=locked)
        value = client.cookies["dockyard_session"]
        page = client.get("/jobs").text
        missing = client.post("/logout", data={})
        assert missing.status_code == 403 and ui_app.users.resolve_session(value) is not None
        response = client.post("/logout", data={"csrf_token": csrf_of(page)})
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert ui_app.users.resolve_session(value) is None
        client.cookies.set("dockyard_session", value)  # a copied cookie is dead too
        assert client.get("/jobs").status_code == 303


def test_revoked_token_and_deleted_user_end_their_sessions(site, ui_app, locked):
    with browser(site) as by_token, browser(site) as by_user:
        login(by_token, token=locked)
        login(by_user, name="trigger-user", password=PASSWORD)
        assert by_token.get("/jobs").status_code == 200 and by_user.get("/jobs").status_code == 200
        ui_app.tokens.revoke("ops")
        assert by_token.get("/jobs").status_code == 303
        assert by_user.get("/jobs").status_code == 200
        ui_app.users.delete("trigger-user")
        assert by_user.get("/jobs").status_code == 303


def test_read_user_sees_no_trigger_and_a_forged_post_is_refused(site, ui_app, locked):
    job_id = ui_app.job(DAILY)[0].id
    seed_run(ui_app, status=RunStatus.SUCCESS)
    with browser(site) as client:
        login(client, name="read-user", password=PASSWORD)
        page = client.get(f"/jobs/{job_id}").text
        assert "Trigger run" not in page and f"/jobs/{job_id}/trigger" not in page
        before = runs(ui_app)
        forged = client.post(f"/jobs/{job_id}/trigger", data={"csrf_token": csrf_of(page)})
        assert forged.status_code == 403 and "trigger scope" in forged.text
        assert runs(ui_app) == before


def test_trigger_user_needs_the_sessions_csrf_token(site, ui_app, locked):
    job_id = ui_app.job(DAILY)[0].id
    with browser(site) as client, browser(site) as other:
        login(client, name="trigger-user", password=PASSWORD)
        login(other, name="trigger-user", password=PASSWORD)
        foreign = csrf_of(other.get(f"/jobs/{job_id}").text)  # the same user's other session
        before = runs(ui_app)
        assert client.post(f"/jobs/{job_id}/trigger", data={}).status_code == 403
        assert client.post(f"/jobs/{job_id}/trigger", data={"csrf_token": foreign}).status_code == 403
        assert runs(ui_app) == before
        own = csrf_of(client.get(f"/jobs/{job_id}").text)
        referer = client.post(
            f"/jobs/{job_id}/trigger", data={"csrf_token": own}, headers={"Referer": "http://evil.example/page"}
        )
        assert referer.status_code == 403 and runs(ui_app) == before
        ok = client.post(f"/jobs/{job_id}/trigger", data={"csrf_token": own}, headers={"Origin": "http://127.0.0.1"})
        assert ok.status_code == 303 and runs(ui_app) == before + 1
        run = ui_app.store.reader.runs.get_run(int(ok.headers["location"].rsplit("/", 1)[1]))
        assert run.cause == "Triggered from the web UI by trigger-user"


def test_users_cli(shop, ui_app):
    config = str(shop / "dockyard.yml")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["users", "create", "ada", "--scope", "trigger", "--password-stdin", "--config", config], input=PASSWORD
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert ui_app.users.verify("ada", PASSWORD).scope == "trigger"
    assert ui_app.users.verify("ada", "wrong password") is None
    again = runner.invoke(cli, ["users", "create", "ada", "--password-stdin", "--config", config], input=PASSWORD)
    assert again.exit_code != 0 and "exists" in again.output
    short = runner.invoke(cli, ["users", "create", "bob", "--password-stdin", "--config", config], input="short")
    assert short.exit_code != 0 and "8 to" in short.output
    listed = runner.invoke(cli, ["users", "list", "--json", "--config", config])
    assert listed.exit_code == 0 and '"ada"' in listed.output and "argon2" not in listed.output
    session = ui_app.users.open_session("trigger", user_id=ui_app.users.list()[0].id)
    deleted = runner.invoke(cli, ["users", "delete", "ada", "--config", config])
    assert deleted.exit_code == 0, deleted.output
    assert ui_app.users.resolve_session(session.cookie) is None and ui_app.users.list() == []
    missing = runner.invoke(cli, ["users", "delete", "ada", "--config", config])
    assert missing.exit_code != 0 and "no user" in missing.output
    with ui_app.store.engine.connect() as conn:  # the store holds an argon2id hash, not the password
        assert conn.exec_driver_sql("select count(*) from users").scalar() == 0


def test_a_session_expires_after_ui_session_hours(site, ui_app, locked, monkeypatch):
    from datetime import timedelta

    from dockyard import clock

    with browser(site) as client:
        response = login(client, token=locked)
        max_age = int(session_cookie(response).split("Max-Age=")[1].split(";")[0])
        assert max_age == int(ui_app.config.server.ui_session_hours * 3600) == 12 * 3600
        assert client.get("/jobs").status_code == 200
        real = clock.now
        monkeypatch.setattr(clock, "now", lambda: real() + timedelta(hours=12, seconds=1))
        assert client.get("/jobs").status_code == 303
