"""Warehouse sessions of a dbt process, and the cancellation of what a killed dbt left behind.

dbt cancels its own queries when it gets SIGINT, which dockyard always sends first. A dbt
process that dies without that chance (SIGKILL after the grace period, the OOM killer, a
worker machine killed with its process group) leaves its queries running in the
warehouse. On a PostgreSQL warehouse, dockyard therefore keeps the identity of every
warehouse connection of the step's dbt process while it runs: the client address and port
of each established TCP connection to the warehouse's port (read from ``/proc``), which
PostgreSQL shows as ``client_addr`` and ``client_port`` in ``pg_stat_activity``. When a
step is stopped, or its dbt ends by a signal, dockyard connects with the environment's own
credentials, cancels (``pg_cancel_backend``) every session of that dbt that is still
there, and terminates (``pg_terminate_backend``) those still there after a grace period.
The reaper does the same for a lost worker's run from the identities the worker stored.

Why not the application name or a query comment: dbt-postgres sets ``application_name``
from the profile, which is part of dbt's partial-parsing key (a per-run name would make
every run parse from scratch), and a query comment would mean editing the project. The
(address, port) pair names exactly the sessions of one dbt process; connections through
a pooler (PgBouncer) or a Unix socket cannot be matched and are not cancelled.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("dockyard.runner.sessions")

#: Types of dbt targets whose leftover sessions dockyard can find and cancel.
SUPPORTED_TYPES = ("postgres",)
#: A session is only matched if it started before (its socket was first seen + this skew).
CLOCK_SKEW_S = 30.0


@dataclass(frozen=True)
class Session:
    """One client-side TCP connection: our address and port, first seen at ``seen_at``."""

    addr: str
    port: int
    seen_at: float

    def key(self) -> tuple[str, int]:
        return (self.addr, self.port)


def _normal(ip: str) -> str:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


def connections(pids: Iterable[int], remote_port: int, now: float | None = None) -> set[Session]:
    """The established TCP connections of ``pids`` to port ``remote_port`` (psutil reads
    them from ``/proc``)."""
    import psutil

    found: set[Session] = set()
    now = time.time() if now is None else now
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.Error, OSError):
            continue  # gone, or not ours to read
        for conn in conns:
            if conn.status == psutil.CONN_ESTABLISHED and conn.raddr and conn.raddr.port == remote_port:
                found.add(Session(_normal(conn.laddr.ip), conn.laddr.port, now))
    return found


def render_output(output: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """A profiles.yml target with its Jinja (``env_var``) rendered against ``env``."""
    import jinja2

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    jenv = jinja2.Environment(undefined=jinja2.StrictUndefined)
    jenv.globals["env_var"] = env_var
    for name in ("as_bool", "as_native", "as_number", "as_text"):
        jenv.filters[name] = lambda value: value
    return {
        key: jenv.from_string(value).render() if isinstance(value, str) and "{" in value else value
        for key, value in output.items()
    }


class PostgresWarehouse:
    """A dbt-postgres target, to find and cancel leftover sessions of a dbt process."""

    def __init__(self, output: Mapping[str, Any]):
        self.host = str(output.get("host") or "localhost")
        self.port = int(output.get("port") or 5432)
        self.user = str(output.get("user") or "")
        self.password = str(output.get("password") or output.get("pass") or "")
        self.dbname = str(output.get("dbname") or output.get("database") or "postgres")
        self.sslmode = output.get("sslmode")

    @classmethod
    def from_output(cls, output: Mapping[str, Any] | None, env: Mapping[str, str]) -> PostgresWarehouse | None:
        """The warehouse of a profiles.yml target, or None when its type is not supported or
        it cannot be rendered (then nothing is swept)."""
        if not output or output.get("type") not in SUPPORTED_TYPES:
            return None
        try:
            return cls(render_output(output, env))
        except Exception as exc:  # noqa: BLE001 - a profile dbt itself will report on
            log.warning("cannot read the warehouse credentials of the target: %s", exc)
            return None

    def _connect(self):
        import psycopg

        kwargs: dict[str, Any] = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=self.dbname,
            connect_timeout=10,
            autocommit=True,
            application_name="dockyard-sweep",
        )
        if self.password:
            kwargs["password"] = self.password
        if self.sslmode:
            kwargs["sslmode"] = str(self.sslmode)
        return psycopg.connect(**kwargs)

    def _matching(self, conn, sessions: Mapping[tuple[str, int], Session]) -> list[tuple[int, str]]:
        if not sessions:
            return []
        rows = conn.execute(
            "select pid, client_addr, client_port, extract(epoch from backend_start), state "
            "from pg_stat_activity where client_port = any(%s) and pid <> pg_backend_pid()",
            ([port for _, port in sessions],),
        ).fetchall()
        out = []
        for pid, addr, port, started, state in rows:
            session = sessions.get((str(addr), port)) if addr is not None else None
            if session and float(started) <= session.seen_at + CLOCK_SKEW_S:
                out.append((pid, state or ""))
        return out

    def cancel_leftovers(self, sessions: Iterable[Session], grace_s: float = 3.0) -> int:
        """Cancel the sessions (of a dbt process that is gone) that are still in
        ``pg_stat_activity``; terminate those left after ``grace_s``. Returns how many were found."""
        wanted = {s.key(): s for s in sessions}
        if not wanted:
            return 0
        with self._connect() as conn:
            found = self._matching(conn, wanted)
            for pid, state in found:
                if state != "idle":
                    conn.execute("select pg_cancel_backend(%s)", (pid,))
            deadline = time.monotonic() + grace_s
            left = found
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = [(pid, state) for pid, state in self._matching(conn, wanted) if state != "idle"]
            for pid, _ in self._matching(conn, wanted):
                # the client is dead: nothing may use this session again
                conn.execute("select pg_terminate_backend(%s)", (pid,))
        return len(found)


class SessionWatch:
    """Keeps the warehouse sessions of one step's dbt process group while it runs (scanned
    every ``every_s`` seconds, and on demand before each signal), and sweeps them after."""

    def __init__(self, warehouse: PostgresWarehouse, report=None, every_s: float = 1.0):
        self.warehouse = warehouse
        self.report = report  # called with the sessions whenever new ones are seen
        self.every_s = every_s
        self.sessions: dict[tuple[str, int], Session] = {}
        self._last = 0.0

    def scan(self, pids: Callable[[], Iterable[int]], force: bool = False) -> None:
        """Look at the connections of ``pids()`` (called only when a scan is due)."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        new = [s for s in connections(pids(), self.warehouse.port) if s.key() not in self.sessions]
        if new:
            self.sessions.update((s.key(), s) for s in new)
            if self.report:
                self.report(list(self.sessions.values()))

    def sweep(self, note) -> None:
        """Cancel what the (now dead) dbt process left running; ``note`` logs to the step."""
        if not self.sessions:
            return
        try:
            found = self.warehouse.cancel_leftovers(self.sessions.values())
        except Exception as exc:  # noqa: BLE001 - the warehouse may be down; say so, go on
            note(f"could not check the warehouse for queries dbt left running: {type(exc).__name__}")
            return
        if found:
            note(f"cancelled {found} warehouse session(s) dbt left running (pg_cancel_backend)")


def sessions_doc(target: str, profiles_dir: str, sessions: Iterable[Session]) -> dict:
    """What a worker stores so the reaper can sweep a lost run's sessions."""
    return {"target": target, "profiles_dir": profiles_dir, "sessions": [[s.addr, s.port, s.seen_at] for s in sessions]}


def sessions_from_doc(doc: Mapping[str, Any]) -> list[Session]:
    return [Session(str(a), int(p), float(t)) for a, p, t in doc.get("sessions") or []]
