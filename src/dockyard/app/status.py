"""The server's state as ``dockyard status`` and ``GET /api/v1/health`` show it: processes
and their heartbeats, the queue, next fires, whether every process could load dockyard.yml,
and whether the store can be read and written."""

from __future__ import annotations

import logging

from dockyard import clock
from dockyard.errors import DockyardError
from dockyard.store.store import Store

log = logging.getLogger("dockyard.app")


class Status:
    """``app.state``: read-only."""

    def __init__(self, app):
        self.app = app

    def summary(self) -> dict:
        """Processes with their heartbeats, the queue, and every scheduled job's next fire."""
        alive_s = self.app.config.server.lost_after_seconds
        processes = self.app.store.leases.list_processes()
        now = clock.now()
        for proc in processes:
            beat = proc.get("heartbeat_at")
            proc["alive"] = bool(beat and not proc.get("stopped_at") and (now - beat).total_seconds() <= alive_s)
        fires = {j.name: self.app.next_fires(j, 1) for j in self.app.jobs()}
        out = {
            "processes": processes,
            "queue": self.app.store.queue.queue_stats(),
            "next_fires": {name: (t[0] if t else None) for name, t in fires.items()},
            "config": self.config_state([p for p in processes if p["alive"]]),
        }
        if self.app.config.repository is not None:  # code from git: deployed and refused commits
            out["repository"] = self.app.repository.status()
        return out

    def config_state(self, alive: list[dict]) -> dict:
        """Whether the running processes could load dockyard.yml: ``ok``, the first ``error``
        (file, line, key, how to fix) and the ``processes`` (ids) that report one. A process
        with an error keeps the last good config in force (see docs/server.md, Config reload)."""
        errors = {p["id"]: (p.get("info") or {}).get("config_error") for p in alive}
        errors = {pid: e for pid, e in errors.items() if e}
        own = getattr(self, "config_error", None)  # this process's reloader (the API's)
        first = own or next(iter(errors.values()), None)
        return {"ok": first is None, "error": first, "processes": sorted(errors)}

    def health(self) -> dict:
        """``status``: ``ok``; ``degraded`` (no live scheduler); ``unavailable`` when the store
        cannot be read, or cannot be written within a second (another process holds its write
        lock, a full disk, a read-only database): nothing could queue or finish a run. Only
        reads and a rolled-back write probe: health never waits behind a writer for long."""
        try:
            alive = self.app.store.leases.list_processes(alive_within_s=self.app.config.server.lost_after_seconds)
            queue = self.app.store.queue.queue_stats()
        except DockyardError as exc:
            log.warning("health: %s", exc.what)
            return {"status": "unavailable", "store": {"read": "unreachable", "write": "unreachable"}}
        write = self.app.store.db.write_state()
        scheduler = any(p["kind"] == "scheduler" for p in alive)
        workers = sum(1 for p in alive if p["kind"] == "worker")
        config = self.config_state(alive)
        status = "unavailable" if write != "ok" else "ok" if scheduler and config["ok"] else "degraded"
        out = {
            "status": status,
            "store": {"read": "ok", "write": write},
            "scheduler": scheduler,
            "workers": workers,
            "queue": queue,
            "config": config,
        }
        if self.app.config.repository is not None:  # code from git (no URL: health needs no token)
            repo = self.app.repository.status()
            out["repository"] = {"deployed": repo["deployed"], "refused": repo["refused"]}
        return out


def store_status(url: str, lost_after_seconds: float = 30) -> dict:
    """What ``dockyard status`` shows when dockyard.yml does not load: the processes and the
    queue, read from the store at ``url`` alone."""
    store = Store(url)
    try:
        processes, queue = store.leases.list_processes(), store.queue.queue_stats()
    finally:
        store.close()
    now = clock.now()
    for proc in processes:
        beat = proc.get("heartbeat_at")
        proc["alive"] = bool(beat and not proc.get("stopped_at") and (now - beat).total_seconds() <= lost_after_seconds)
    return {"processes": processes, "queue": queue}
