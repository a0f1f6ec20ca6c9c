"""End-to-end fixtures: the real ``dockyard`` CLI in a process of its own, real dbt on DuckDB,
the store on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dockyard.store import Store

DOCKYARD = [sys.executable, "-m", "dockyard"]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class Project:
    """A copy of examples/shop plus helpers to change it and to drive the CLI."""

    def __init__(self, path: Path, store_url: str | None):
        self.path = path
        self.store_url = store_url
        self.config = path / "dockyard.yml"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DOCKYARD_STORE_URL", None)
        if self.store_url:
            env["DOCKYARD_STORE_URL"] = self.store_url
        return env

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))

    def add_job(self, yaml_text: str) -> None:
        with open(self.config, "a") as fh:
            fh.write(textwrap.indent(textwrap.dedent(yaml_text), "  "))

    def cli(self, *args: str, timeout: float = 300, check: int | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*DOCKYARD, *args, "--config", str(self.config)],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check is not None:
            assert proc.returncode == check, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*DOCKYARD, *args, "--config", str(self.config)],
            cwd=self.path,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_json(self, job: str, *extra: str, expect: int = 0) -> dict:
        proc = self.cli("run", job, "--json", *extra, check=expect)
        return json.loads(proc.stdout)

    def store(self) -> Store:
        return Store(self.store_url or f"sqlite:///{self.path / '.dockyard' / 'dockyard.db'}")

    def wait_for_step(self, index: int, timeout: float = 60) -> int:
        """Wait until some run has step ``index`` running; returns the run id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.store() as store:
                    for run in store.runs.list_runs(limit=5):
                        if any(s.index == index and s.status.value == "running" for s in run.steps):
                            return run.id
            except Exception:  # the store may not exist yet
                pass
            time.sleep(0.2)
        raise AssertionError(f"no run reached step {index} in {timeout} s")


@pytest.fixture(params=BACKENDS)
def project(request, shop: Path) -> Project:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database_factory")()
    return Project(shop, url)


@pytest.fixture
def sqlite_project(shop: Path) -> Project:
    return Project(shop, None)


SLOW_MODEL = """\
    {{ config(materialized='table') }}
    -- long enough to be interrupted: a large cross join
    select count(*) as n, sum(a.range * b.range % 7) as s
    from range(200000000) a, range(100) b
"""


def dockyard_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions ``marker`` (our config path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ")[-1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            pids.append(int(entry.name))
    return pids
