"""The App facade: the one way the CLI, API, scheduler and UI use dockyard."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dockyard import clock, files, permissions
from dockyard.app.delivery import deliver_after
from dockyard.app.recorder import RunObserver, StoreRecorder
from dockyard.app.service import ServiceOps
from dockyard.config.loader import LoadedConfig, load_config
from dockyard.config.model import Job
from dockyard.dbt.command import build_argv, parse_command
from dockyard.domain import JobRecord, RunRecord, RunStatus, StepStatus
from dockyard.errors import (
    ConfigError,
    ConflictError,
    DockyardError,
    FencedError,
    NotFoundError,
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

ACTIVE = {RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING}


@dataclass
class Check:
    """One line of ``dockyard validate``."""

    name: str
    ok: bool
    detail: str = ""
    warning: bool = False  # ok, but worth fixing (printed with a "!")


@dataclass
class ValidationReport:
    checks: list[Check] = field(default_factory=list)
    jobs: list[tuple[JobRecord, list]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


class App(ServiceOps):
    """Everything dockyard does, over one loaded config and one store."""

    def __init__(self, loaded: LoadedConfig, store_url: str | None = None):
        self.loaded = loaded
        self.config = loaded.config
        self._store_url = store_url
        self._synced = False

    @classmethod
    def open(cls, config_path: str | Path | None = None, store_url: str | None = None) -> App:
        return cls(load_config(config_path), store_url)

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

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    # -- jobs -------------------------------------------------------------------------------
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

    def jobs(self) -> list[JobRecord]:
        if not self._synced:
            self.sync()
        names = {j.name for j in self.config.jobs}
        return [j for j in self.store.list_jobs() if j.name in names or j.definition.get("source") == "api"]

    def job(self, ref: str | int) -> tuple[JobRecord, Job]:
        """A job by id, name or identifier, with its config (jobs created through the API too)."""
        for record in self.jobs():
            if str(ref) in (str(record.id), record.name, record.definition.get("identifier")):
                return record, self.job_config(record)
        self.loaded.job(str(ref))  # raises ConfigError with a suggestion
        raise NotFoundError(f"no job '{ref}'")

    def job_config(self, record: JobRecord) -> Job:
        """The job's settings: from dockyard.yml, or from the store for an API-created job."""
        if record.definition.get("source") == "api":
            from dockyard.cloud_jobs import job_model

            return job_model(record)
        return self.loaded.job(record.name)

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

    # -- validation -------------------------------------------------------------------------
    def validate(self, connection: bool = False) -> ValidationReport:
        report = ValidationReport()
        report.checks.append(Check("config", True, str(self.loaded.path)))
        try:
            project = self.project
            report.checks.append(Check("dbt project", True, f"{project.name} at {project.project_dir}"))
        except DockyardError as exc:
            report.checks.append(Check("dbt project", False, exc.render()))
            return report
        for name in self.config.environments:
            try:
                env = self.config.environments[name]
                target = project.target_for(name)
                resolve_secrets(self.loaded, name)
                detail = f"target {target} in {project.profiles_dir(env) / 'profiles.yml'}"
                report.checks.append(Check(f"environment {name}", True, detail))
            except DockyardError as exc:
                report.checks.append(Check(f"environment {name}", False, exc.render()))
                continue
            if connection:
                report.checks.append(self._debug_connection(name))
        for record in self.jobs():
            report.jobs.append((record, self.next_fires(record, 3)))
        report.checks.extend(Check("permissions", True, line, warning=True) for line in self.permission_warnings())
        return report

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

    def _debug_connection(self, env_name: str) -> Check:
        from dockyard.runner.probe import dbt_debug

        target = self.project.target_for(env_name)
        ok, detail = dbt_debug(
            project_dir=self.project.project_dir,
            profiles_dir=self.project.effective_profiles_dir(env_name, target),
            target=target,
            env=dbt_environment(self.loaded, env_name, resolve_secrets(self.loaded, env_name)),
            secrets=list(resolve_secrets(self.loaded, env_name).values()),
        )
        return Check(f"connection {env_name}", ok, detail)

    # -- runs -------------------------------------------------------------------------------
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
        if env_name not in self.config.environments:
            raise NotFoundError(
                f"no environment '{env_name}'", hint=f"environments: {', '.join(self.config.environments)}"
            )
        self.project.target_for(env_name, self.job_target(record, job, env_name))
        resolve_secrets(self.loaded, env_name)  # fail before a run is recorded
        self._refuse_overlap(record, job)
        run_id = self.store.create_run(
            record.id, record.name, env_name, job.all_commands, trigger=trigger, cause=cause or f"Triggered {trigger}"
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
        self.reap_lost_runs()
        active = self.store.list_runs(job=record.id, status=["starting", "running"], limit=1)
        if active:
            raise ConflictError(
                f"job '{record.name}' already has run {active[0].id} {active[0].status.value}",
                hint=f"wait for it, cancel it (dockyard cancel {active[0].id}), queue this "
                f"run behind it with: dockyard trigger {record.name!r}, or set "
                "allow_overlap: true on the job",
            )

    def rerun(
        self, run_id: int, *, from_failure: bool = True, observer: RunObserver | None = None, on_start=None
    ) -> RunRecord:
        """Run a failed or cancelled run again, in the foreground, as a new run of the same job
        and environment (trigger ``retry``, ``attempt`` + 1, ``retry_of`` the old run). With
        ``from_failure``, the failed step for its nodes that did not complete, then the later
        steps (:func:`dockyard.retry.retry_steps`); otherwise every command of the old run."""
        from dockyard.retry import has_default_selector, retry_steps

        old = self.get_run(run_id)
        if not old.status.is_final:
            raise DockyardError(
                f"run {run_id} is still {old.status.value}", hint="wait for it to finish (or cancel it), then rerun it"
            )
        if old.status == RunStatus.SUCCESS:
            raise DockyardError(
                f"run {run_id} succeeded: there is nothing to re-run",
                hint=f"run the job again with: dockyard run {old.job_id or old.job}",
            )
        record, job = self.job(old.job_id if old.job_id is not None else old.job)
        env_name = old.environment
        if env_name not in self.config.environments:
            raise NotFoundError(
                f"run {run_id} ran in environment '{env_name}', which is no longer configured",
                hint=f"environments: {', '.join(self.config.environments)}",
            )
        steps = sorted(old.steps, key=lambda s: s.index)
        if from_failure:
            default = has_default_selector(self.project.project_dir)
            commands = [s.command for s in retry_steps(old, default_selector=default)]
        else:
            commands = [s.command for s in steps]
        if not commands:
            raise DockyardError(
                f"run {run_id} has no failed step to re-run from",
                hint=f"re-run all its commands with: dockyard rerun {run_id} --all",
            )
        self.project.target_for(env_name, self.job_target(record, job, env_name))
        resolve_secrets(self.loaded, env_name)  # fail before a run is recorded
        self._refuse_overlap(record, job)
        new_id = self.store.create_run(
            record.id,
            record.name,
            env_name,
            commands,
            trigger="retry",
            cause=f"Rerun of run {old.id}" + (" from failure" if from_failure else ""),
            attempt=old.attempt + 1,
            retry_of=old.id,
        )
        self.store.transition_run(
            new_id, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id=f"{socket.gethostname()}:{os.getpid()}"
        )
        return deliver_after(self, new_id, lambda: self.execute(new_id, observer=observer, on_start=on_start))

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

    def reap_lost_runs(self) -> list[int]:
        """Mark as ``error``/``worker_lost`` the runs a dead foreground process on this host
        left active (a ``dockyard run`` killed with SIGKILL)."""
        host = socket.gethostname()
        lost = []
        for run in self.store.list_runs(status=[s.value for s in ACTIVE], limit=100):
            # foreground runs are owned by "host:pid"; a worker's ("host:pid:worker:id") are
            # reaped by the scheduler from their heartbeats
            parts = (run.worker_id or "").split(":")
            if len(parts) != 2 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid == os.getpid() or _alive(pid):
                continue
            if self._finish(run.id, RunStatus.ERROR, "worker_lost", False):
                lost.append(run.id)
        return lost

    def list_runs(
        self, *, job: str | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[RunRecord]:
        job_ref: int | str | None = None
        if job is not None:
            job_ref = self.job(job)[0].id
        self.reap_lost_runs()
        return self.store.list_runs(job=job_ref, status=status, limit=limit, offset=offset)

    def get_run(self, run_id: int) -> RunRecord:
        self.reap_lost_runs()
        return self.store.get_run(run_id)

    def run_dir(self, run_id: int) -> Path:
        run = self.store.get_run(run_id)
        return Path(run.artifacts_dir or self.state_dir / "runs" / str(run.id))

    def run_log(self, run_id: int, step: int | None = None, *, tail: int | None = None) -> str:
        """The steps' logs (each one's last ``tail`` bytes when given: a log can be huge)."""
        run = self.store.get_run(run_id)
        folder = self.run_dir(run_id) / "logs"
        indexes = [s.index for s in run.steps] if step is None else [step]
        if step is not None and step not in {s.index for s in run.steps}:
            raise NotFoundError(f"run {run_id} has no step {step}", hint=f"steps are numbered 1 to {len(run.steps)}")
        parts = []
        commands = {s.index: s.command for s in run.steps}
        for index in indexes:
            name = f"step-{index}.log"
            command = commands[index]
            body = files.read_text(folder, name, tail=tail) if files.exists(folder, name) else "(no log)\n"
            parts.append(f"== step {index}: {command} ==\n{body}")
        return "\n".join(parts)

    def artifact_path(self, run_id: int, relpath: str) -> Path:
        try:
            return files.resolve(self.run_dir(run_id) / "artifacts", relpath)
        except files.OutsideRoot:
            raise NotFoundError(f"run {run_id} has no artifact {relpath!r}") from None


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
