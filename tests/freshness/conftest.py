"""Freshness fixtures: a tiny dbt project on DuckDB with two sources whose ``loaded_at`` the
tests set relative to now, a dockyard.yml with a freshness job and a Slack channel pointing at a
loopback Slack server (http.server in a thread, speaking the incoming-webhook API)."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from dockyard.app import App

JOB = "Source freshness"
ENV = "prod"


@dataclass
class SlackServer:
    """Records the JSON body of every POST; answers ``ok`` as Slack does."""

    port: int = 0
    bodies: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/XXXX"


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackServer]:
    state = SlackServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                state.bodies.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class FreshProject:
    """The project folder, its DuckDB file, and the App over its dockyard.yml."""

    def __init__(self, path: Path):
        self.path = path
        self.db = path / "fresh.duckdb"

    def load(self, **hours_ago: float | None) -> None:
        """Set each source table's ``loaded_at`` to that many hours ago (None: drop the table)."""
        with duckdb.connect(str(self.db)) as conn:
            for table, hours in hours_ago.items():
                if hours is None:
                    conn.execute(f"drop table if exists main.{table}")
                else:
                    conn.execute(
                        f"create or replace table main.{table} as select 1 as id, "
                        f"cast(now() as timestamp) - interval '{int(hours * 60)} minutes' as loaded_at"
                    )

    def app(self) -> App:
        app = App.open(self.path / "dockyard.yml")
        app.sync()
        return app


def write_project(path: Path, slack_url: str) -> FreshProject:
    path.mkdir(parents=True)
    (path / "models").mkdir()
    (path / "dbt_project.yml").write_text(
        'name: fresh\nversion: "1.0"\nconfig-version: 2\nprofile: fresh\nmodel-paths: ["models"]\n'
    )
    (path / "profiles.yml").write_text(
        "fresh:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {json.dumps(str(path / 'fresh.duckdb'))}\n      threads: 2\n"
    )
    (path / "models" / "sources.yml").write_text(
        textwrap.dedent(
            """\
            version: 2
            sources:
              - name: raw
                schema: main
                loaded_at_field: loaded_at
                freshness:
                  warn_after: {count: 1, period: hour}
                  error_after: {count: 24, period: hour}
                tables:
                  - name: orders
                  - name: customers
            """
        )
    )
    (path / "dockyard.yml").write_text(
        textwrap.dedent(
            f"""\
            environments:
              {ENV}: {{target: dev}}
            jobs:
              - name: {JOB}
                environment: {ENV}
                schedule: {{cron: "*/30 * * * *"}}
                commands: ["dbt source freshness"]
            notifications:
              - type: slack
                name: data-team
                webhook_url: {slack_url}
                kinds: [freshness]
            alerts:
              allow_hosts: [127.0.0.1]
            """
        )
    )
    return FreshProject(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory, slack: SlackServer) -> FreshProject:
    mp = pytest.MonkeyPatch()
    mp.delenv("DOCKYARD_STORE_URL", raising=False)
    mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    yield write_project(tmp_path_factory.mktemp("freshness") / "fresh", slack.url)
    mp.undo()
