"""While another process holds SQLite's write lock, reads answer at once and health says so.

A real second process takes the lock (``BEGIN IMMEDIATE`` / ``BEGIN EXCLUSIVE``) on the
store's file; the API runs with the production busy timeout (30 s). On PostgreSQL a second
connection locks the token and version tables against writes. Before the fix a GET
whose token was due for its last-used bookkeeping waited those 30 s and answered 503, and
health answered ``ok``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dockyard.api import auth as auth_module
from dockyard.api.app import create_app
from dockyard.app import App

HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
conn.execute(sys.argv[2])
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class Holder:
    """A process holding the write lock of a SQLite file until :meth:`release`."""

    def __init__(self, path: Path, begin: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path), begin], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)


def timed(client: TestClient, path: str, token: str | None = None):
    headers = {"Authorization": f"Token {token}"} if token else {}
    start = time.monotonic()
    response = client.get(path, headers=headers)
    return response, time.monotonic() - start


class PgHolder:
    """A second PostgreSQL connection that blocks writes to the token and version tables
    (``EXCLUSIVE`` mode: reads go on) until :meth:`release`."""

    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        # a regression (a request waiting for the lock) fails the test instead of hanging it
        self.conn.execute("SET idle_in_transaction_session_timeout = '15s'")
        self.conn.execute("BEGIN")
        self.conn.execute("LOCK TABLE api_tokens, alembic_version IN EXCLUSIVE MODE")

    def release(self) -> None:
        with contextlib.suppress(Exception):  # already ended by its idle timeout
            self.conn.rollback()
        self.conn.close()


@pytest.mark.parametrize(
    "begin", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_reads_do_not_wait_behind_a_writer_and_health_reports_it(shop: Path, monkeypatch, begin: str, request):
    monkeypatch.setattr(auth_module, "TOUCH_RETRY_S", 0.0, raising=False)  # retry at the next request
    url = request.getfixturevalue("pg_database_factory")() if begin == "postgresql" else None
    first = App.open(shop / "dockyard.yml", url)  # an earlier server: store migrated, jobs synced
    first.sync()
    _, token = first.store.tokens.create_token("reader", "read")
    first.close()
    app = App.open(shop / "dockyard.yml", url)  # the restarted server: nothing synced or touched yet
    with TestClient(create_app(app), base_url="https://testserver") as client:
        holder = PgHolder(url) if url else Holder(app.state_dir / "dockyard.db", begin)
        try:
            for path in ("/api/v1/runs", "/api/v1/jobs", "/api/v2/accounts/1/runs/", "/api/v1/environments"):
                response, took = timed(client, path, token)
                assert response.status_code == 200, (path, response.status_code, response.text)
                assert took < 2, f"{path} took {took:.1f} s behind the writer"
            health, took = timed(client, "/api/v1/health")
            assert took < 3, f"health took {took:.1f} s"
            assert health.status_code == 503 and health.headers["Retry-After"] == "5"
            assert health.json()["status"] == "unavailable"
            assert health.json()["store"] == {"read": "ok", "write": "locked"}
            assert app.store.tokens.list_tokens()[0].last_used_at is None  # not recorded, and no error
        finally:
            holder.release()
        health, _ = timed(client, "/api/v1/health")
        assert health.status_code == 200, health.text
        assert health.json()["store"] == {"read": "ok", "write": "ok"}
        assert health.json()["status"] == "degraded"  # no scheduler runs in this test
        response, _ = timed(client, "/api/v1/runs", token)
        assert response.status_code == 200
        assert app.store.tokens.list_tokens()[0].last_used_at is not None  # recorded once the lock is gone
    app.close()
