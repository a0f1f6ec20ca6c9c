"""What the API knows about the project: environments and jobs with their stable ids.

Environment ids never change for a name (the store upserts by name), so they are cached;
jobs are read from the store on every call (one query), so jobs created, changed or
deleted by another process are seen at once. dockyard.yml is re-read when it changes
(at most once a second), like the scheduler and workers do.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from dockyard.config.model import Job
from dockyard.domain import JobRecord
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store import records as rec

log = logging.getLogger("dockyard.api")

PROJECT_ID = 1


@dataclass
class JobView:
    record: JobRecord
    config: Job
    source: str  # config | api
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name


class Catalog:
    def __init__(self, app):
        self.app = app
        self._env_ids: dict[str, int] = {}
        self._adapters: dict[str, str] = {}
        self._lock = threading.Lock()
        self._checked = 0.0
        self._reloader = None

    @property
    def account_id(self) -> int:
        return self.app.config.server.account_id

    def fresh(self) -> None:
        """Re-read dockyard.yml if it changed (and sync it), at most once a second."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        with self._lock:
            self._checked = now
            if self._reloader is None:
                from dockyard.config.reload import Reloader

                self._reloader = Reloader(self.app)
                self.app.jobs()  # first use: sync environments and jobs
            elif self.app.config.server.reload and self._reloader.check():
                self.app.sync()
                self._adapters.clear()

    # -- environments -------------------------------------------------------------------
    def environments(self) -> list[dict]:
        self.fresh()
        names = set(self.app.config.environments)
        rows = [row for row in self.app.store.list_environments() if row["name"] in names]
        self._env_ids.update({row["name"]: row["id"] for row in rows})
        return sorted(rows, key=lambda r: r["id"])

    def env_id(self, name: str) -> int | None:
        if name not in self._env_ids:
            self.environments()
        return self._env_ids.get(name)

    def env_names(self) -> dict[int, str]:
        return {row["id"]: row["name"] for row in self.environments()}

    def environment(self, env_id: int) -> dict:
        for row in self.environments():
            if row["id"] == env_id:
                return row
        raise NotFoundError(f"Environment {env_id} not found")

    def adapter(self, env_name: str) -> str:
        """The adapter type of the environment's target (``postgres``, ``duckdb``...)."""
        if env_name not in self._adapters:
            kind = "unknown"
            try:
                env = self.app.config.environments[env_name]
                kind = str(self.app.project.profile(env)["outputs"][env.target].get("type", "unknown"))
            except (DockyardError, KeyError, TypeError):
                pass
            self._adapters[env_name] = kind
        return self._adapters[env_name]

    # -- jobs ---------------------------------------------------------------------------
    def jobs(self) -> list[JobView]:
        self.fresh()
        names = {j.name for j in self.app.config.jobs}
        out = []
        for row in self.app.store.job_rows():
            if row["source"] != "api" and row["name"] not in names:
                continue
            record = rec.job_record(row)
            try:
                config = self.app.job_config(record)
            except DockyardError as exc:  # one unusable stored job never breaks a list
                log.warning("job %s is not listed: %s", record.id, exc.what)
                continue
            out.append(JobView(record, config, row["source"], row["created_at"], row["updated_at"]))
        return out

    def job(self, job_id: int) -> JobView:
        for view in self.jobs():
            if view.id == job_id:
                return view
        raise NotFoundError(f"Job {job_id} not found", hint="GET /api/v2/accounts/{id}/jobs/ lists the jobs")

    def job_names(self) -> dict[int, JobView]:
        return {view.id: view for view in self.jobs()}
