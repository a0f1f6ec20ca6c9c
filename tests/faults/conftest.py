"""Fault tests: real ``dockyard`` processes (schedulers, workers, ``serve``) killed, paused,
cut off from their store and restarted, with real dbt.

:class:`Cluster` owns a copy of ``tests/fixtures/mini`` (or of the shop example), its
``dockyard.yml`` and every process it starts. Each process runs in a session (process
group) of its own, logs to a file under the test's folder, and is killed with its group
by the fixture's finalizer; dbt children (forked by worker slots, so their command line
is the worker's, which names this test's config path) are found by :meth:`Cluster.leftovers`
and killed too. Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from dockyard.store import Store
from dockyard.store.tables import fires, runs

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("DOCKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MINI = ROOT / "tests" / "fixtures" / "mini"
DOCKYARD = [sys.executable, "-m", "dockyard"]
FINAL = ("success", "error", "cancelled")
# A real dbt invocation that is quick and writes nothing into the project, for runs that go
# on at the same time in one project: `dbt deps` empties and recreates `dbt_packages` (even
# without packages), so two at once fail each other now and then.
QUICK = "dbt debug --config-dir"
# variables of the outer environment that must not leak into the processes under test
SCRUB = (
    "DOCKYARD_CRASH_AT",
    "DOCKYARD_CRASH_SIGNAL",
    "DOCKYARD_CLOCK_WARP",
    "DOCKYARD_CLOCK_ORIGIN",
    "DOCKYARD_STORE_URL",
    "DOCKYARD_CONFIG",
    "DOCKYARD_SUPERVISOR_PID",
)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - e.g. the store is not created yet
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_state(pid: int) -> str | None:
    """The state letter of a process (R, S, T, Z...), None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.append(int(entry.name))
    return out


def marked_processes(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line or environment mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (marker.encode() in cmd or marker.encode() in env) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class Proc:
    """A dockyard process started by a :class:`Cluster` (leader of its own process group)."""

    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name, self.popen, self.log = name, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def __repr__(self) -> str:
        return f"<{self.name} pid {self.pid}>"


class Cluster:
    """A project, its dockyard.yml, a store, and the processes of one test."""

    def __init__(
        self, root: Path, store_url: str | None = None, *, source: Path = MINI, env: dict[str, str] | None = None
    ):
        self.root = root
        self.path = root / "project"
        shutil.copytree(
            source, self.path, ignore=shutil.ignore_patterns("target", "logs", ".dockyard", "*.duckdb*", ".user.yml")
        )
        self.config = self.path / "dockyard.yml"
        self.logs = root / "logs"
        self.logs.mkdir()
        (root / "db").mkdir()
        self.store_url = store_url or f"sqlite:///{self.path / '.dockyard' / 'dockyard.db'}"
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        self.env.update(
            {
                "MINI_DB_PATH": str(root / "db" / "mini.duckdb"),
                "SHOP_DUCKDB_DIR": str(root / "db"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DOCKYARD_STORE_URL": self.store_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(env or {})
        self.procs: list[Proc] = []
        self._store: Store | None = None
        self._n = 0

    # -- configuration ------------------------------------------------------------------
    def configure(
        self,
        jobs: list[dict],
        *,
        server: dict | None = None,
        environments: dict | None = None,
        runner: dict | None = None,
        text: str | None = None,
    ) -> None:
        """Write dockyard.yml (``text`` verbatim, or built from the arguments)."""
        if text is None:
            doc = {
                "runner": {"inherit_env": ["MINI_DB_PATH", "SHOP_DUCKDB_DIR"], "grace_seconds": 3, **(runner or {})},
                "server": {
                    "heartbeat_seconds": 1,
                    "lost_after_seconds": 5,
                    "poll_seconds": 0.1,
                    "shutdown_grace_seconds": 0,
                    **(server or {}),
                },
                "environments": environments or {"dev": {"target": "dev"}},
                "jobs": jobs,
            }
            text = yaml.safe_dump(doc, sort_keys=False)
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)

    def warp(self, start: str, speed: float, origin: float | None = None) -> None:
        """Make every process started from now on share a warped clock."""
        self.env["DOCKYARD_CLOCK_WARP"] = f"{start}*{speed:g}"
        self.env["DOCKYARD_CLOCK_ORIGIN"] = repr(origin if origin is not None else time.time())

    # -- processes ----------------------------------------------------------------------
    def start(self, *args: str, env: dict[str, str] | None = None, name: str | None = None) -> Proc:
        """``dockyard <args> --config <ours>`` in a new session, logging to a file."""
        self._n += 1
        name = name or f"{args[0]}-{self._n}"
        log = self.logs / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                [*DOCKYARD, *args, "--config", str(self.config)],
                cwd=self.path,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def cli(
        self, *args: str, check: int | None = 0, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*DOCKYARD, *args, "--config", str(self.config)],
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check is not None:
            assert result.returncode == check, (
                f"dockyard {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def stop(self, proc: Proc, timeout: float = 30) -> int | None:
        """SIGTERM to the process (its handler stops its children), then SIGKILL its group."""
        if proc.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.signal_group(signal.SIGKILL)
                proc.popen.wait(10)
                raise AssertionError(
                    f"{proc} did not stop within {timeout} s after SIGTERM:\n{proc.text()[-3000:]}"
                ) from None
        return proc.popen.returncode

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        proc.signal_group(sig)
        if sig == signal.SIGKILL:
            proc.popen.wait(10)

    def leftovers(self) -> list[int]:
        """Live processes of this test: command line or environment names our config or DB."""
        return sorted(set(marked_processes(str(self.config))) | set(marked_processes(str(self.root / "db"))))

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.signal_group(signal.SIGKILL)
            if proc.popen.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(10)
        for _ in range(3):
            pids = self.leftovers()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if self._store is not None:
            self._store.close()

    # -- the store ----------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_url)
        return self._store

    def all_runs(self):
        return self.store.runs.list_runs(limit=None, order="asc")

    def cron_fires(self) -> list:
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(fires.c.job_id, fires.c.fire_key, fires.c.scheduled_for, fires.c.run_id).where(
                    fires.c.fire_key.like("cron:%")
                )
            ).all()

    def active_count(self) -> int:
        with self.store.engine.connect() as conn:
            return len(
                conn.execute(select(runs.c.id).where(runs.c.status.in_(("queued", "starting", "running")))).all()
            )

    def all_final(self) -> bool:
        return self.active_count() == 0

    def diagnostics(self) -> str:
        parts = []
        for proc in self.procs:
            parts.append(f"--- {proc} ({'running' if proc.running else proc.popen.returncode})\n{proc.text()[-2500:]}")
        return "\n".join(parts)


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(store_url: str | None = None, **kw) -> Cluster:
        cluster = Cluster(tmp_path / f"c{len(made)}", store_url, **kw)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.cleanup()


@pytest.fixture
def cluster(cluster_factory) -> Cluster:
    """A mini project on a SQLite store."""
    return cluster_factory()


@pytest.fixture
def pg_cluster(cluster_factory, pg_database_factory) -> Cluster:
    """A mini project on a fresh PostgreSQL store."""
    return cluster_factory(pg_database_factory())


def worker_slots(proc: Proc) -> list[int]:
    """The slot processes of a ``dockyard worker`` (its children)."""
    return children(proc.pid)


def assert_no_duplicate_runs(cluster: Cluster) -> None:
    """Every cron fire made exactly one run; no two runs share a fire or a (job, schedule time);
    retries form chains (one retry per failed run)."""
    all_runs = cluster.all_runs()
    keys = [(r.job_id, r.scheduled_for) for r in all_runs if r.trigger == "schedule"]
    assert len(keys) == len(set(keys)), "two runs for one (job, scheduled_for)"
    retried = [r.retry_of for r in all_runs if r.retry_of is not None]
    assert len(retried) == len(set(retried)), "a failed run was retried twice"
    fire_runs = [f.run_id for f in cluster.cron_fires()]
    assert None not in fire_runs, "a fire without its run"
    assert len(fire_runs) == len(set(fire_runs)), "two fires share a run"
