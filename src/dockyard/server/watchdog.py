"""Restart a server child whose heartbeat stopped: the supervisor side of the heartbeats.

``dockyard serve`` (for its scheduler child) and ``dockyard worker`` (for its slots) each
keep a :class:`Watchdog` over their children. A child counts as *wedged* when its row in the
``processes`` table (matched by host and pid, registered after the child was started, not
stopped) has not renewed its ``heartbeat_at`` for its stale bound, as seen by the
supervisor's own monotonic clock: ``server.stale_after_seconds``, by default
``3 × heartbeat_seconds + 10 s`` (each child publishes its bound in ``info``, so a reload
that changes the interval is followed). A child that has not registered yet (a worker slot
importing dbt) is left alone, and so is every child while the store cannot be read: a
store outage stops every heartbeat and is not a reason to restart anything.

A wedged child gets SIGTERM (and SIGCONT, in case it was stopped) and, if it is still there
:data:`TERM_GRACE_S` later, SIGKILL; the supervisor's usual exit handling then starts a new
one, after a :class:`Backoff` delay that doubles with each restart in the last
:data:`BACKOFF_WINDOW_S` (at once, then 1 s, 2 s, 4 s ... at most :data:`BACKOFF_MAX_S`), so a child that
wedges or dies at once is not restarted in a hot loop.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from dockyard import clock
from dockyard.errors import DockyardError
from dockyard.runner.process import signal_pid

log = logging.getLogger("dockyard.server.watchdog")

TERM_GRACE_S = 5.0
BACKOFF_WINDOW_S = 600.0
BACKOFF_MAX_S = 60.0
DEFAULT_HEARTBEAT_S = 5.0


def stale_after(heartbeat_s: float, configured: float | None = None) -> float:
    """The stale bound of a process heartbeating every ``heartbeat_s`` seconds."""
    return configured if configured else 3 * heartbeat_s + 10


def beat_info(server, config_error: str | None) -> dict:
    """What a scheduler or worker slot publishes in its heartbeat row's ``info``."""
    return {
        "config_error": config_error,
        "heartbeat_seconds": server.heartbeat_seconds,
        "stale_after_seconds": stale_after(server.heartbeat_seconds, server.stale_after_seconds),
    }


class Watchdog:
    """Finds and stops the wedged children of one supervisor (see the module docstring)."""

    def __init__(self, rows: Callable[[], list[dict]], *, what: str = "child"):
        self.rows = rows  # the processes table (raises DockyardError when the store is away)
        self.what = what
        self.host = socket.gethostname()
        self._seen: dict[int, tuple[object, float]] = {}  # pid -> (heartbeat_at, when it changed)
        self._terminated: dict[int, float] = {}  # pid -> when SIGTERM was sent
        self.restarts = 0

    def check(self, children: dict[int, datetime]) -> list[int]:
        """``children``: pid -> when it was started (``clock.now()``). Sends the signals;
        returns the pids it signalled this time."""
        now = time.monotonic()
        signalled = []
        for pid, sent in list(self._terminated.items()):
            if pid not in children:
                del self._terminated[pid]
            elif now - sent >= TERM_GRACE_S:
                log.warning("%s %s did not stop within %g s of SIGTERM: SIGKILL", self.what, pid, TERM_GRACE_S)
                signal_pid(pid, signal.SIGKILL)
                del self._terminated[pid]
                signalled.append(pid)
        try:
            rows = self.rows()
        except DockyardError as exc:
            log.debug("watchdog: store unreadable (%s); judging nothing", exc.what)
            self._seen = {pid: (beat, now) for pid, (beat, _) in self._seen.items()}
            return signalled
        for pid, row in self._rows_of(children, rows).items():
            beat = row.get("heartbeat_at")
            seen = self._seen.get(pid)
            if seen is None or seen[0] != beat:
                self._seen[pid] = (beat, now)
                continue
            info = row.get("info") or {}
            bound = stale_after(
                float(info.get("heartbeat_seconds") or DEFAULT_HEARTBEAT_S), info.get("stale_after_seconds")
            )
            if now - seen[1] > bound and pid not in self._terminated:
                log.warning(
                    "%s %s (%s) has not renewed its heartbeat for %.0f s (bound %g s): restarting it "
                    "(SIGTERM, SIGKILL after %g s)",
                    self.what,
                    pid,
                    row.get("id"),
                    now - seen[1],
                    bound,
                    TERM_GRACE_S,
                )
                signal_pid(pid, signal.SIGTERM)
                signal_pid(pid, signal.SIGCONT)
                self._terminated[pid] = now
                self.restarts += 1
                signalled.append(pid)
        for pid in set(self._seen) - set(children):
            del self._seen[pid]
        return signalled

    def _rows_of(self, children: dict[int, datetime], rows: Iterable[dict]) -> dict[int, dict]:
        out: dict[int, dict] = {}
        for row in rows:
            pid, started = row.get("pid"), row.get("started_at")
            if row.get("host") != self.host or pid not in children or row.get("stopped_at") is not None:
                continue
            if started is None or started < children[pid] - timedelta(seconds=2):
                continue  # an older process's row, with a pid the system gave again
            if pid not in out or started > out[pid]["started_at"]:
                out[pid] = row
        return out


class Backoff:
    """Delays before restarting a child: none the first time, then 1 s, doubling with each
    restart of the same child within :data:`BACKOFF_WINDOW_S`, at most :data:`BACKOFF_MAX_S`."""

    def __init__(self):
        self._restarts: dict[object, list[float]] = {}

    def delay(self, key: object) -> float:
        now = time.monotonic()
        recent = [t for t in self._restarts.get(key, []) if now - t < BACKOFF_WINDOW_S]
        self._restarts[key] = [*recent, now]
        return 0.0 if not recent else min(BACKOFF_MAX_S, 2.0 ** (len(recent) - 1))

    def count(self, key: object) -> int:
        return len(self._restarts.get(key, []))


def store_rows(url: Callable[[], str]) -> Callable[[], list[dict]]:
    """The processes table, read through a Store opened for each read (the worker's parent
    forks slots: it never keeps a connection open). ``url`` is resolved at the first read
    (a DockyardError then, e.g. no config, means: nothing can be judged yet)."""
    from dockyard.store import Store

    resolved: list[str] = []

    def rows() -> list[dict]:
        if not resolved:
            resolved.append(url())
        store = Store(resolved[0])
        try:
            return store.leases.list_processes()
        finally:
            store.close()

    return rows


def started_now() -> datetime:
    return clock.now()
