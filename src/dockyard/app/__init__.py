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

import contextlib
import logging
import os
import socket
import threading
import time
from functools import cached_property
from pathlib import Path

from dockyard import clock, permissions
from dockyard.app.delivery import deliver_after
from dockyard.app.jobs import Jobs, JobView
from dockyard.app.recorder import RunObserver, StoreRecorder
from dockyard.app.runs import RETRY_LOG_TAIL_BYTES, Run, Runs
from dockyard.app.tokens import Tokens
from dockyard.app.triggers import Triggers
from dockyard.app.validate import Check, Validate, ValidationReport
from dockyard.config.loader import LoadedConfig, load_config
from dockyard.config.model import Job
from dockyard.dbt.command import build_argv, parse_command
from dockyard.domain import JobRecord, RunRecord, RunStatus, StepStatus
from dockyard.errors import (
    ConfigError,
    DockyardError,
    FencedError,
    RunOverlapError,
    SetupError,
    StoreError,
)
from dockyard.policy import trusted_job
from dockyard.project import DbtProject, dbt_environment, hidden_files, resolve_secrets
from dockyard.runner.executor import Executor
from dockyard.runner.isolation import file_view
from dockyard.runner.plan import RunPlan, StepPlan
from dockyard.runner.sessions import PostgresWarehouse
from dockyard.schedule import safe_next_fires
from dockyard.secrets import SECRET_ENV_PREFIX, Scrubber
from dockyard.store.persist import persist
from dockyard.store.store import Store

__all__ = [
    "App",
    "Check",
    "JobView",
    "RETRY_LOG_TAIL_BYTES",
    "Run",
    "RunObserver",
    "ValidationReport",
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
        return cls(load_config(config_path), store_url)

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
    def validate(self) -> Validate:
        """Called (``app.validate(connection=False)``): the :class:`ValidationReport`."""
        return Validate(self)

    # -- wiring -----------------------------------------------------------------------------
    @cached_property
    def project(self) -> DbtProject:
        return DbtProject(self.loaded)

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
        self.store.sync_environments(
            [
                {"name": name, "target": env.target, "schema": env.schema_, "threads": env.threads}
                for name, env in self.config.environments.items()
            ]
        )
        ids = self.store.sync_jobs(
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

    def deploy(self) -> dict[str, int]:
        """Re-sync environments and jobs from dockyard.yml into the store."""
        return self.sync()

    def reload(self, loaded) -> None:
        """Switch to a newly loaded (valid) config; the next call re-syncs jobs."""
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

    # -- runs (reading and changing them is app.runs; these stay for existing callers) --------
    def list_runs(
        self, *, job: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[RunRecord]:
        return self.runs.list(job=job, status=status, limit=limit, offset=offset)

    def get_run(self, run_id: int) -> Run:
        return self.runs.get(run_id)

    def run_dir(self, run_id: int) -> Path:
        return self.runs.folder(run_id)

    def run_log(self, run_id: int, step: int | None = None, *, tail: int | None = None) -> str:
        return self.runs.logs(run_id, step, tail=tail)

    def cancel(self, run_id: int, *, final_ok: bool = False) -> str:
        return self.runs.cancel(run_id, final_ok=final_ok)

    def maybe_retry(self, run_id: int) -> int | None:
        return self.runs.maybe_retry(run_id)

    def stop_lost_process(self, reaped) -> threading.Thread | None:
        return self.runs.stop_lost_process(reaped)

    def enqueue(self, ref: str | int, **options):
        """Queue a run for the workers (see :meth:`dockyard.app.triggers.Triggers.enqueue`)."""
        return self.triggers.enqueue(ref, **options)

    def after_run(self, run: RunRecord) -> None:
        """Hook for what follows a finished run (completion triggers are fired by the
        scheduler from the store, so nothing is lost if this process dies here)."""

    # -- foreground runs ------------------------------------------------------------------------
    def run_job(
        self,
        ref: str | int,
        *,
        environment: str | None = None,
        trigger: str = "manual",
        cause: str | None = None,
        observer: RunObserver | None = None,
        on_start=None,
    ) -> RunRecord:
        """Run a job in the foreground and return its final record."""
        record, job = self.job(ref)
        env_name = environment or job.environment
        self.triggers.check_environment(env_name)
        return self._run_foreground(
            record,
            job,
            env_name,
            job.all_commands,
            trigger=trigger,
            cause=cause or f"Triggered {trigger}",
            observer=observer,
            on_start=on_start,
        )

    def _run_foreground(
        self,
        record: JobRecord,
        job: Job,
        env_name: str,
        commands: list[str],
        *,
        trigger: str,
        cause: str,
        attempt: int = 1,
        retry_of: int | None = None,
        observer: RunObserver | None = None,
        on_start=None,
    ) -> RunRecord:
        """Record a run owned by this process (``host:pid``) and execute it now: ``dockyard
        run`` and ``dockyard rerun``. Everything that can be checked is checked before the
        run is recorded (the profile target, the secrets, an overlapping run)."""
        self.project.target_for(env_name, self.job_target(record, job, env_name))
        resolve_secrets(self.loaded, env_name)  # fail before a run is recorded
        self._refuse_overlap(record, job)
        run_id = self.store.create_run(
            record.id, record.name, env_name, commands, trigger=trigger, cause=cause, attempt=attempt, retry_of=retry_of
        )
        self.store.transition_run(
            run_id, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id=f"{socket.gethostname()}:{os.getpid()}"
        )
        return deliver_after(self, run_id, lambda: self.execute(run_id, observer=observer, on_start=on_start))

    def _refuse_overlap(self, record, job: Job) -> None:
        """A foreground run starts at once (it does not wait for a worker slot or the
        concurrency limits, which workers apply to it in turn), but never overlaps a run of
        the same job unless the job allows it."""
        if job.allow_overlap:
            return
        self.runs.reap_lost()
        active = self.store.list_runs(job=record.id, status=["starting", "running"], limit=1)
        if active:
            raise RunOverlapError(
                f"job '{record.name}' already has run {active[0].id} {active[0].status.value}",
                hint=f"wait for it, cancel it (dockyard cancel {active[0].id}), queue this "
                f"run behind it with: dockyard trigger {record.name!r}, or set "
                "allow_overlap: true on the job",
            )

    def execute(
        self,
        run_id: int,
        *,
        epoch: int | None = None,
        observer: RunObserver | None = None,
        on_start=None,
        recorder=None,
        keep_open=None,
    ) -> RunRecord:
        """Execute a run that is ``starting`` (claimed by this process): its stored steps, in
        its environment. ``epoch`` fences every write when a worker owns the run; when
        ``keep_open()`` is true at the end the run is left active (to be requeued). Store
        calls are retried while the store is unreachable (see :mod:`dockyard.store.persist`)."""

        def retry(fn, what=f"run {run_id}"):
            return persist(fn, timeout=self.config.server.lost_after_seconds, what=what)

        run = retry(lambda: self.store.get_run(run_id))
        run_dir = self.state_dir / "runs" / str(run_id)
        retry(lambda: self.store.set_run_fields(run_id, artifacts_dir=str(run_dir), **_fence(epoch)))
        secrets: dict[str, str] = {}
        try:  # everything before dbt's first event: a failure here ends the run at once
            record, job = retry(lambda: self.job(run.job_id if run.job_id is not None else run.job))
            env_name = run.environment
            if env_name not in self.config.environments:
                raise ConfigError(
                    f"run {run_id} is for environment '{env_name}', which is no longer in dockyard.yml",
                    location=self.loaded.location("environments"),
                    hint=f"environments: {', '.join(self.config.environments) or 'none'}",
                )
            target = self.project.target_for(env_name, self.job_target(record, job, env_name))
            secrets = resolve_secrets(self.loaded, env_name)
            commands = [s.command for s in run.steps]
            permissions.private_dir(self.state_dir)  # 0700: targets/ holds dbt's raw files
            for folder in ("logs", "artifacts"):
                permissions.private_dir(run_dir / folder)
            # workers (epoch set) keep dbt imported for fast starts; a foreground run stays as lean
            # as raw dbt (see runner.preload in docs/configuration.md)
            preload = self.config.runner.preload
            plan = self._plan(
                run_id,
                env_name,
                target,
                job,
                commands,
                secrets,
                run_dir,
                job_id=record.id,
                cause=run.cause,
                trigger=run.trigger,
                run=run,
                preload=(epoch is not None) if preload is None else preload,
            )
            recorder = recorder or StoreRecorder(self.store, run_id, commands, observer)
            executor = Executor(plan, recorder)
        except (FencedError, StoreError):
            raise
        except (DockyardError, OSError) as exc:
            raise self._fail_setup(run, exc, run_dir, secrets, epoch, retry) from None
        except Exception as exc:  # a bug: end the run now (internal_error), not worker_lost later
            self._fail_setup(run, exc, run_dir, secrets, epoch, retry, reason="internal_error")
            raise
        if getattr(recorder, "executor", False) is None:
            recorder.executor = executor  # the recorder's tick() passes a cancel request on
        if on_start:
            on_start(run_id, executor)
        retry(
            lambda: self.store.transition_run(
                run_id,
                RunStatus.RUNNING,
                expected={RunStatus.STARTING},
                epoch=epoch,
                started_at=clock.now(),
                heartbeat_at=clock.now(),
            )
        )
        try:
            outcome = executor.run()
        except BaseException:
            with contextlib.suppress(Exception):
                self._finish(run_id, RunStatus.ERROR, "internal_error", False, epoch=epoch)
            raise
        if not (keep_open and keep_open()):
            drain = getattr(recorder, "drain", None)  # writes kept while the store was away
            if drain:
                drain()
            retry(lambda: self._finish(run_id, outcome.status, outcome.reason, outcome.has_warnings, epoch=epoch))
        return retry(lambda: self.store.get_run(run_id))

    def _plan(
        self,
        run_id: int,
        env_name: str,
        target: str,
        job: Job,
        commands: list[str],
        secrets: dict[str, str],
        run_dir: Path,
        *,
        job_id: int | None = None,
        cause: str | None = None,
        trigger: str = "manual",
        run=None,
        preload: bool = False,
    ) -> RunPlan:
        """``run``'s trigger overrides (``runs.overrides``: schema, target name, threads,
        timeout) apply to this run only (see :mod:`dockyard.overrides`)."""
        from dockyard import overrides as ov

        env = self.config.environments[env_name]
        project = self.project
        run_overrides = getattr(run, "overrides", None) or {}
        target, profiles_dir = ov.profile_for_run(project, env_name, target, run_overrides, self.state_dir)
        target_path = project.target_path(env_name)
        threads = run_overrides.get("threads_override") or job.settings.threads or env.threads
        steps = [
            StepPlan(
                i,
                text,
                build_argv(
                    parse_command(text),
                    target=target,
                    profiles_dir=str(profiles_dir),
                    project_dir=str(project.project_dir),
                    target_path=str(target_path),
                    threads=threads,
                ),
            )
            for i, text in enumerate(commands, start=1)
        ]
        env_vars = dbt_environment(self.loaded, env_name, secrets, run_id, job_id=job_id, cause=cause, trigger=trigger)
        env_vars.update(ov.run_env(run_overrides, getattr(run, "git_sha", None), getattr(run, "git_branch", None)))
        fresh = (
            self.state_dir / "freshness" / env_name / str(job_id or job.name)
            if job.triggers.fresh_sources_only
            else None
        )
        warehouse = PostgresWarehouse.from_output(project.output_in(profiles_dir, target), env_vars)
        return RunPlan(
            run_id=run_id,
            project_dir=project.project_dir,
            env=env_vars,
            steps=steps,
            fresh_sources_state=fresh,
            warehouse=warehouse,
            warehouse_target=target,
            warehouse_profiles_dir=str(profiles_dir),
            target_path=target_path,
            run_dir=run_dir,
            secrets=list(secrets.values()),
            timeout_seconds=ov.timeout_seconds(job.timeout_seconds, run_overrides),
            grace_seconds=self.config.runner.grace_seconds,
            mode=self.config.runner.mode,
            preload=preload,
            view=file_view(
                self.state_dir,
                base=project.project_dir,
                argv=[*(a for s in steps for a in s.argv), *env_vars.values()],
                reveal=[target_path, profiles_dir, *([fresh] if fresh else [])],
                hide_files=hidden_files(self.loaded, env_name, self.store_url),
            ),
        )

    def _finish(
        self, run_id: int, status: RunStatus, reason: str | None, warnings: bool, epoch: int | None = None
    ) -> bool:
        """Make the run final in one fenced write; a step left running by a lost process ends
        ``error``, steps that never ran end ``skipped``; a cancel acknowledged before this write
        makes it ``cancelled`` (see ``Store.finish_run``). False when the run was already final."""
        return self.store.finish_run(run_id, status, reason, epoch=epoch, has_warnings=warnings) is not None

    def _fail_setup(
        self,
        run,
        exc: Exception,
        run_dir: Path,
        secrets: dict[str, str],
        epoch: int | None,
        retry,
        reason: str = "setup_failed",
    ) -> SetupError:
        """A run that failed before dbt started: its first unfinished step ``error`` with the
        reason (scrubbed) in its log, the others ``skipped``, the run ``error`` with ``reason``
        (``setup_failed``: never retried), at once. Returns the error to raise."""
        if isinstance(exc, DockyardError):
            error = SetupError(exc.what, hint=exc.hint, location=exc.location)
        elif not isinstance(exc, OSError):
            error = SetupError(
                f"internal error {type(exc).__name__}: {exc}",
                hint="the process log has the traceback; please report it",
            )
        else:
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            error = SetupError(
                f"run {run.id} cannot write its files:{where}: {exc.strerror or exc}",
                hint=f"check that {self.state_dir} is writable and its disk has room",
            )
        scrubber = Scrubber([*secrets.values(), *_known_secrets(self.loaded, run.environment)])
        text = scrubber.scrub(error.render())
        error = SetupError(text)
        pending = [
            s.index
            for s in sorted(run.steps, key=lambda s: s.index)
            if s.status in (StepStatus.QUEUED, StepStatus.RUNNING)
        ]
        log_rel = None
        if pending:
            log_rel = f"logs/step-{pending[0]}.log"
            try:
                permissions.private_dir(run_dir / "logs")
                with permissions.open_private(run_dir / log_rel, "a", encoding="utf-8") as fh:
                    fh.write(
                        f"{time.strftime('%H:%M:%S', time.gmtime())}  [dockyard] run {run.id} could not start: {text}\n"
                    )
            except OSError:
                log_rel = None  # the folder is the problem: the reason is in the process log
            retry(
                lambda: self.store.finish_step(
                    run.id, pending[0], StepStatus.ERROR, None, clock.now(), log_path=log_rel, epoch=epoch
                )
            )
        retry(lambda: self._finish(run.id, RunStatus.ERROR, reason, False, epoch=epoch))
        return error

    # -- the server's state -----------------------------------------------------------------
    def status(self) -> dict:
        """Processes with their heartbeats, the queue, and every scheduled job's next fire."""
        alive_s = self.config.server.lost_after_seconds
        processes = self.store.list_processes()
        now = clock.now()
        for proc in processes:
            beat = proc.get("heartbeat_at")
            proc["alive"] = bool(beat and not proc.get("stopped_at") and (now - beat).total_seconds() <= alive_s)
        fires = {j.name: self.next_fires(j, 1) for j in self.jobs()}
        return {
            "processes": processes,
            "queue": self.store.queue_stats(),
            "next_fires": {name: (t[0] if t else None) for name, t in fires.items()},
            "config": self.config_state([p for p in processes if p["alive"]]),
        }

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
            alive = self.store.list_processes(alive_within_s=self.config.server.lost_after_seconds)
            queue = self.store.queue_stats()
        except DockyardError as exc:
            log.warning("health: %s", exc.what)
            return {"status": "unavailable", "store": {"read": "unreachable", "write": "unreachable"}}
        write = self.store.write_state()
        scheduler = any(p["kind"] == "scheduler" for p in alive)
        workers = sum(1 for p in alive if p["kind"] == "worker")
        config = self.config_state(alive)
        status = "unavailable" if write != "ok" else "ok" if scheduler and config["ok"] else "degraded"
        return {
            "status": status,
            "store": {"read": "ok", "write": write},
            "scheduler": scheduler,
            "workers": workers,
            "queue": queue,
            "config": config,
        }


def store_status(url: str, lost_after_seconds: float = 30) -> dict:
    """What ``dockyard status`` shows when dockyard.yml does not load: the processes and the
    queue, read from the store at ``url`` alone."""
    store = Store(url)
    try:
        processes, queue = store.list_processes(), store.queue_stats()
    finally:
        store.close()
    now = clock.now()
    for proc in processes:
        beat = proc.get("heartbeat_at")
        proc["alive"] = bool(beat and not proc.get("stopped_at") and (now - beat).total_seconds() <= lost_after_seconds)
    return {"processes": processes, "queue": queue}


def _known_secrets(loaded: LoadedConfig, env_name: str) -> list[str]:
    """The environment's secret values that can be read (to scrub a setup error), and every
    ``DBT_ENV_SECRET_*`` value of this process."""
    values = [v for k, v in os.environ.items() if k.startswith(SECRET_ENV_PREFIX)]
    env = loaded.config.environments.get(env_name)
    for ref in env.secrets.values() if env else ():
        if ref.startswith("env:"):
            values.append(os.environ.get(ref[4:], ""))
        else:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                values.append(Path(os.path.expanduser(ref[5:])).read_text(encoding="utf-8").strip())
    return [v for v in values if v]


def _fence(epoch: int | None) -> dict:
    return {} if epoch is None else {"epoch": epoch}
