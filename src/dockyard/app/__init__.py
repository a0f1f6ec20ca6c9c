"""The App facade: the one way the CLI, API, scheduler and UI use dockyard.

``App`` is composed of services by noun, which every front-end calls (and nothing below
them): ``app.runs`` (:mod:`dockyard.app.runs`), ``app.jobs`` (:mod:`dockyard.app.jobs`),
``app.triggers`` (:mod:`dockyard.app.triggers`), ``app.tokens`` (:mod:`dockyard.app.tokens`),
``app.validate`` (:mod:`dockyard.app.validate`); ``status``, ``health`` and ``refresh`` for
the server's state. Its own methods run a run (foreground or for a worker: ``execute``).

A front-end needs nothing else (the web UI, a CI webhook)::

    app = App.open("dockyard.yml")
    runs, total = app.runs.search(job_ids=[job_id], limit=20)   # a page of runs
    run = app.runs.get(run_id)                                    # detail, lost runs settled
    text = app.runs.logs(run_id, step=2, tail=65536)              # logs
    reader = app.runs.follow(run_id)                              # reader.read() until .done
    new_id = app.triggers.trigger(job_id, {"git_sha": sha, "github_pull_request_id": pr})
    app.runs.cancel(run_id); app.triggers.rerun(run_id, from_failure=True)

Each condition a front-end can meet is one error class of :mod:`dockyard.errors`
(``UnknownRunError``, ``RunActiveError``, ``QueueFullError``...), raised here, so every
front-end answers it the same way (docs/api.md, "One condition, one answer").
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import cached_property
from pathlib import Path

from dockyard import clock, permissions
from dockyard.app.alerts import Alerts
from dockyard.app.ci import Ci
from dockyard.app.execution import Execution
from dockyard.app.jobs import Jobs, JobView
from dockyard.app.recorder import RunObserver
from dockyard.app.repository import RepositoryService
from dockyard.app.runs import RETRY_LOG_TAIL_BYTES, Run, Runs
from dockyard.app.status import Status, store_status
from dockyard.app.tokens import Tokens
from dockyard.app.triggers import Triggers
from dockyard.app.validate import Check, Validate, ValidationReport
from dockyard.config.loader import LoadedConfig, load_config
from dockyard.config.model import Job
from dockyard.domain import JobRecord, RunRecord
from dockyard.errors import ProjectError
from dockyard.policy import trusted_job
from dockyard.project import DbtProject
from dockyard.schedule import safe_next_fires
from dockyard.store.store import Store

__all__ = [
    "App",
    "Check",
    "JobView",
    "RETRY_LOG_TAIL_BYTES",
    "Run",
    "RunObserver",
    "ValidationReport",
    "store_status",
]

log = logging.getLogger("dockyard.app")
REFRESH_EVERY_S = 1.0


class App:
    """Everything dockyard does, over one loaded config and one store."""

    def __init__(self, loaded: LoadedConfig, store_url: str | None = None):
        self.loaded = loaded
        self.config = loaded.config
        self._store_url = store_url
        self._synced = False
        self._reloader = None
        self._refreshed = 0.0
        self._refresh_lock = threading.Lock()

    @classmethod
    def open(cls, config_path: str | Path | None = None, store_url: str | None = None) -> App:
        app = cls(load_config(config_path), store_url)
        if app.config.repository is not None:
            app.repository.follow()  # code from git: start on the deployed commit's config
        return app

    # -- services -----------------------------------------------------------------------------
    @cached_property
    def runs(self) -> Runs:
        return Runs(self)

    @cached_property
    def jobs(self) -> Jobs:
        """The catalog; called (``app.jobs()``), the job records."""
        return Jobs(self)

    @cached_property
    def triggers(self) -> Triggers:
        return Triggers(self)

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(self)

    @cached_property
    def users(self):
        """The web UI's users and login sessions (docs/ui.md, "Auth")."""
        from dockyard.app.users import Users

        return Users(self)

    @cached_property
    def ci(self) -> Ci:
        """Slim CI: PR schemas, CI jobs, foreground builds, cleanup, the janitor."""
        return Ci(self)

    @cached_property
    def alerts(self) -> Alerts:
        """Alerts: notify (route and queue), the delivery log, sending (docs/alerts.md)."""
        return Alerts(self)

    @cached_property
    def metrics(self):
        """Run metrics: model histories, test rates, jobs and queue times (docs/metrics.md)."""
        from dockyard.app.metrics import Metrics

        return Metrics(self)

    @cached_property
    def costs(self):
        """The cost report: models by warehouse time and bytes, trends, incremental candidates."""
        from dockyard.app.costs import Costs

        return Costs(self)

    @cached_property
    def freshness(self):
        """Source freshness history: latest per source, history, stale (docs/monitors.md)."""
        from dockyard.app.freshness import FreshnessService

        return FreshnessService(self)

    @cached_property
    def execution(self) -> Execution:
        return Execution(self)

    @cached_property
    def handoff(self):
        """``dockyard run`` through a running server's warm worker slots (docs/cli.md)."""
        from dockyard.app.handoff import Handoff

        return Handoff(self)

    @cached_property
    def state(self) -> Status:
        """The server's state: processes, queue, config, health (read-only)."""
        return Status(self)

    @cached_property
    def repository(self) -> RepositoryService:
        """Code from git: the deployed commit, checkouts, deploys (docs/ci.md)."""
        return RepositoryService(self)

    @cached_property
    def validate(self) -> Validate:
        """Called (``app.validate(connection=False)``): the :class:`ValidationReport`."""
        return Validate(self)

    @cached_property
    def monitors(self):
        """Data monitors: list, history, check (docs/monitors.md)."""
        from dockyard.app.monitors import Monitors

        return Monitors(self)

    # -- wiring -----------------------------------------------------------------------------
    @cached_property
    def project(self) -> DbtProject:
        try:
            return DbtProject(self.loaded)
        except ProjectError as exc:
            if self.config.repository is not None and not getattr(self.loaded, "sha", None):
                raise ProjectError(
                    "the dbt project comes from git (repository:) and no commit is deployed yet",
                    hint="run 'dockyard deploy'",
                ) from exc
            raise

    @property
    def state_dir(self) -> Path:
        return (self.loaded.base_dir / self.config.state_dir).resolve()

    @property
    def store_url(self) -> str:
        url = self._store_url or os.environ.get("DOCKYARD_STORE_URL") or self.config.store.url
        if not url:
            return f"sqlite:///{self.state_dir / 'dockyard.db'}"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            # a relative SQLite path is relative to dockyard.yml, not to the current folder
            return "sqlite:///" + str((self.loaded.base_dir / url[len("sqlite:///") :]).resolve())
        return url

    @cached_property
    def store(self) -> Store:
        store = Store(self.store_url)
        try:
            store.migrate()
        except BaseException:
            store.close()  # not cached: the next use connects (and migrates) again
            raise
        return store

    def connect(self) -> None:
        """Open the store now (and migrate it): fail early, before forking workers."""
        self.store  # noqa: B018

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    # -- config -------------------------------------------------------------------------------
    def sync(self) -> dict[str, int]:
        """Write environments and jobs from the config into the store; returns name -> id."""
        if self.config.repository is not None:  # code from git: the deployed commit's jobs
            self.repository.ensure_current()
        self.store.jobs.sync_environments(
            [
                {"name": name, "target": env.target, "schema": env.schema_, "threads": env.threads}
                for name, env in self.config.environments.items()
            ]
        )
        ids = self.store.jobs.sync_jobs(
            [
                {
                    "name": job.name,
                    "environment": job.environment,
                    "cron": job.cron,
                    "timezone": job.schedule.timezone if job.schedule else "UTC",
                    "definition": job.model_dump(mode="json", by_alias=True, exclude_none=True),
                }
                for job in self.config.jobs
            ]
        )
        self._synced = True
        return ids

    def deploy(self, sha: str | None = None) -> dict:
        """Put a commit's dockyard.yml in force (``repository:``; the branch head when ``sha``
        is None): ``{"sha", "status": "ok", "jobs": {name: id}}`` or ``{"sha", "status":
        "refused", "error"}`` (the last good commit stays); without ``repository:`` the re-sync
        of dockyard.yml, ``{"status": "ok", "jobs"}`` (see :mod:`dockyard.app.repository`)."""
        return self.repository.deploy(sha)

    def reload(self, loaded) -> None:
        """Switch to a newly loaded (valid) config; the next call re-syncs jobs. With
        ``repository:`` the server's file is merged with the deployed commit's."""
        if "repository" in self.__dict__ or loaded.config.repository is not None:
            loaded = self.repository.adopt(loaded)
        self.loaded, self.config = loaded, loaded.config
        self.__dict__.pop("project", None)
        if "jobs" in self.__dict__:
            self.jobs.forget()
        self._synced = False

    def refresh(self) -> bool:
        """Follow dockyard.yml from a long-lived front-end (the API): re-read it when it
        changed (checked by a probe, see :mod:`dockyard.config.reload`) and sync it, at most
        once a second; True when a new config was applied. The first call syncs."""
        now = time.monotonic()
        if now - self._refreshed < REFRESH_EVERY_S:
            return False
        with self._refresh_lock:
            self._refreshed = now
            if self._reloader is None:
                from dockyard.config.reload import Reloader

                self._reloader = Reloader(self)
                self.jobs()  # first use: sync environments and jobs
                return False
            if self.config.server.reload and self._reloader.check():
                self.sync()
                self.jobs.forget()
                return True
        return False

    # -- jobs (the catalog is app.jobs) -------------------------------------------------------
    def job(self, ref: str | int) -> tuple[JobRecord, Job]:
        """A job by id, name or identifier, with its config (jobs created through the API too);
        :class:`dockyard.errors.UnknownJobError` otherwise."""
        view = self.jobs.get(ref)
        return view.record, view.config

    def job_ids(self) -> dict[str, int]:
        return {j.name: j.id for j in self.jobs()}

    def job_target(self, record: JobRecord, job: Job, env_name: str) -> str | None:
        """The profile output a run of the job uses instead of its environment's target, if any:
        ``settings.target_name``, in the job's own environment (``--env`` uses that env's
        target). A job created through the API never switches to another output of the profile
        (other credentials) with it, unless an unrestricted admin saved the job
        (:func:`dockyard.policy.trusted_job`): there it is dbt Cloud's ``target.name``."""
        override = job.settings.target_name if env_name == job.environment else None
        if (
            override
            and record.definition.get("source") == "api"
            and (
                override not in self.project.targets(self.config.environments[env_name])
                or not trusted_job(record.definition, self.config.server)
            )
        ):
            return None
        return override

    @staticmethod
    def next_fires(job: JobRecord, count: int = 1) -> list:
        """The job's next ``count`` fires; ``[]`` without a schedule or when the stored one
        cannot be computed (see :func:`dockyard.schedule.safe_next_fires`)."""
        return safe_next_fires(job.cron, job.timezone, clock.now(), count, job=job.name)

    def permission_warnings(self, also: list[str | Path] | None = None) -> list[str]:
        """Folders and files of the state folder, the SQLite store's files (wherever they are)
        and the ``file:`` secrets (and ``also``, e.g. a TLS key) that group or others can read,
        with the ``chmod`` that fixes them."""
        extra: list[str | Path] = list(also or [])
        if self.store_url.startswith("sqlite:///"):
            db = Path(self.store_url[len("sqlite:///") :].split("?", 1)[0])
            extra += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        extra += [
            Path(os.path.expanduser(ref[5:]))
            for env in self.config.environments.values()
            for ref in env.secrets.values()
            if ref.startswith("file:")
        ]
        return permissions.warnings_for(self.state_dir, extra)

    # -- running and the server's state (app.execution, app.state) ----------------------------
    def run_job(self, ref: str | int, **options) -> RunRecord:
        """Run a job in the foreground (see :meth:`dockyard.app.execution.Execution.run_job`)."""
        return self.execution.run_job(ref, **options)

    def execute(self, run_id: int, **options) -> RunRecord:
        """Execute a claimed run (see :meth:`dockyard.app.execution.Execution.execute`)."""
        return self.execution.execute(run_id, **options)

    def status(self) -> dict:
        return self.state.summary()

    def health(self) -> dict:
        return self.state.health()

    def config_state(self, alive: list[dict]) -> dict:
        return self.state.config_state(alive)
