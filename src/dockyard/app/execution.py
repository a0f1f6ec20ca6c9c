"""Executing a run: ``dockyard run`` in the foreground (:meth:`Execution.run_job`,
:meth:`Execution.run_foreground`) and a worker's claimed run (:meth:`Execution.execute`, with
its lease epoch fencing every write). The plan of each step (profile, target folder,
environment, secrets, overrides) is made here; the runner executes it and reports through a
:class:`~dockyard.app.recorder.StoreRecorder`."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from dockyard import clock, permissions
from dockyard.app.delivery import deliver_after
from dockyard.app.recorder import RunObserver, StoreRecorder
from dockyard.config.loader import LoadedConfig
from dockyard.config.model import Job
from dockyard.dbt.command import build_argv, parse_command
from dockyard.domain import JobRecord, RunRecord, RunStatus, StepStatus
from dockyard.errors import ConfigError, DockyardError, FencedError, RunOverlapError, SetupError, StoreError
from dockyard.project import dbt_environment, hidden_files, resolve_secrets
from dockyard.runner.executor import Executor
from dockyard.runner.isolation import file_view
from dockyard.runner.plan import RunPlan, StepPlan
from dockyard.runner.sessions import PostgresWarehouse
from dockyard.secrets import SECRET_ENV_PREFIX, Scrubber
from dockyard.store.persist import persist


class Execution:
    """``app.execution``: runs a run, in this process."""

    def __init__(self, app):
        self.app = app
        # a worker slot's warm parents (dockyard.runner.warm.WarmPool); None: no warm runs
        self.warm_pool = None

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
        record, job = self.app.job(ref)
        env_name = environment or job.environment
        self.app.triggers.check_environment(env_name)
        return self.run_foreground(
            record,
            job,
            env_name,
            job.all_commands,
            trigger=trigger,
            cause=cause or f"Triggered {trigger}",
            observer=observer,
            on_start=on_start,
        )

    def run_foreground(
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
        overrides: dict | None = None,
        git_sha: str | None = None,
        git_branch: str | None = None,
    ) -> RunRecord:
        """Record a run owned by this process (``host:pid``) and execute it now: ``dockyard
        run`` and ``dockyard rerun``. Everything that can be checked is checked before the
        run is recorded (the profile target, the secrets, an overlapping run)."""
        self.app.project.target_for(env_name, self.app.job_target(record, job, env_name))
        resolve_secrets(self.app.loaded, env_name)  # fail before a run is recorded
        self.refuse_overlap(record, job)
        run_id = self.app.store.runs.create_run(
            record.id,
            record.name,
            env_name,
            commands,
            trigger=trigger,
            cause=cause,
            attempt=attempt,
            retry_of=retry_of,
            overrides=overrides,
            git_sha=git_sha,
            git_branch=git_branch,
        )
        self.app.store.runs.transition_run(
            run_id, RunStatus.STARTING, expected={RunStatus.QUEUED}, worker_id=f"{socket.gethostname()}:{os.getpid()}"
        )
        return deliver_after(self.app, run_id, lambda: self.execute(run_id, observer=observer, on_start=on_start))

    def refuse_overlap(self, record, job: Job) -> None:
        """A foreground run starts at once (it does not wait for a worker slot or the
        concurrency limits, which workers apply to it in turn), but never overlaps a run of
        the same job unless the job allows it."""
        if job.allow_overlap:
            return
        self.app.runs.reap_lost()
        active = self.app.store.reader.runs.list_runs(job=record.id, status=["starting", "running"], limit=1)
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
            return persist(fn, timeout=self.app.config.server.lost_after_seconds, what=what)

        run = retry(lambda: self.app.store.reader.runs.get_run(run_id))
        run_dir = self.app.state_dir / "runs" / str(run_id)
        retry(lambda: self.app.store.runs.set_run_fields(run_id, artifacts_dir=str(run_dir), **_fence(epoch)))
        secrets: dict[str, str] = {}
        try:  # everything before dbt's first event: a failure here ends the run at once
            run = self.app.repository.pin(run, epoch)  # code from git: the commit it runs, recorded
            record, job = retry(lambda: self.app.job(run.job_id if run.job_id is not None else run.job))
            env_name = run.environment
            if env_name not in self.app.config.environments:
                raise ConfigError(
                    f"run {run_id} is for environment '{env_name}', which is no longer in dockyard.yml",
                    location=self.app.loaded.location("environments"),
                    hint=f"environments: {', '.join(self.app.config.environments) or 'none'}",
                )
            target = self.app.project.target_for(env_name, self.app.job_target(record, job, env_name))
            secrets = resolve_secrets(self.app.loaded, env_name)
            commands = [s.command for s in run.steps]
            permissions.private_dir(self.app.state_dir)  # 0700: targets/ holds dbt's raw files
            for folder in ("logs", "artifacts"):
                permissions.private_dir(run_dir / folder)
            # workers (epoch set) keep dbt imported for fast starts; a foreground run stays as lean
            # as raw dbt (see runner.preload in docs/configuration.md)
            preload = self.app.config.runner.preload
            plan = self.plan(
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
            recorder = recorder or StoreRecorder(self.app.store, run_id, commands, observer)
            executor = Executor(plan, recorder)
        except (FencedError, StoreError):
            raise
        except (DockyardError, OSError) as exc:
            raise self._fail_setup(run, exc, run_dir, secrets, epoch, retry) from None
        except Exception as exc:  # a bug: end the run now (internal_error), not worker_lost later
            self._fail_setup(run, exc, run_dir, secrets, epoch, retry, reason="internal_error")
            raise
        if recorder.executor is None:
            recorder.executor = executor  # the recorder's tick() passes a cancel request on
        if on_start:
            on_start(run_id, executor)
        retry(
            lambda: self.app.store.runs.transition_run(
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
                self.finish(run_id, RunStatus.ERROR, "internal_error", False, epoch=epoch)
            raise
        if not (keep_open and keep_open()):
            recorder.drain()  # writes kept while the store was away
            retry(lambda: self.finish(run_id, outcome.status, outcome.reason, outcome.has_warnings, epoch=epoch))
        return retry(lambda: self.app.store.reader.runs.get_run(run_id))

    def plan(
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

        env = self.app.config.environments[env_name]
        project = self.app.project
        run_overrides = (run.overrides if run is not None else None) or {}
        ci_run = self.app.ci.run_for(run, env_name)  # a pull-request build (dockyard.app.ci_run)
        if ci_run is not None:
            run_overrides = ci_run.overrides  # the PR schema
        target, profiles_dir = ov.profile_for_run(project, env_name, target, run_overrides, self.app.state_dir)
        target_path = project.target_path(env_name)
        project_dir = self.app.repository.project_dir(run.git_sha if run else None)  # a commit's checkout
        threads = run_overrides.get("threads_override") or job.settings.threads or env.threads
        steps = [
            StepPlan(
                i,
                text,
                build_argv(
                    parse_command(text),
                    target=target,
                    profiles_dir=str(profiles_dir),
                    project_dir=str(project_dir),
                    target_path=str(target_path),
                    threads=threads,
                ),
            )
            for i, text in enumerate(commands, start=1)
        ]
        env_vars = dbt_environment(
            self.app.loaded, env_name, secrets, run_id, job_id=job_id, cause=cause, trigger=trigger
        )
        env_vars.update(ov.run_env(run_overrides, run.git_sha if run else None, run.git_branch if run else None))
        fresh = (
            self.app.state_dir / "freshness" / env_name / str(job_id or job.name)
            if job.triggers.fresh_sources_only
            else None
        )
        warehouse = PostgresWarehouse.from_output(project.output_in(profiles_dir, target), env_vars)
        plan = RunPlan(
            run_id=run_id,
            project_dir=project_dir,
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
            grace_seconds=self.app.config.runner.grace_seconds,
            mode=self.app.config.runner.mode,
            preload=preload,
            view=file_view(
                self.app.state_dir,
                base=project_dir,
                argv=[*(a for s in steps for a in s.argv), *env_vars.values()],
                reveal=[target_path, profiles_dir, *([fresh] if fresh else [])],
                hide_files=hidden_files(self.app.loaded, env_name, self.app.store_url),
            ),
        )
        if self.warm_pool is not None and plan.mode == "fork" and preload:
            if env.warm if env.warm is not None else self.app.config.runner.warm:
                plan.warm, plan.warm_name = self.warm_pool, env_name
        return ci_run.prepare(plan) if ci_run is not None else plan

    def finish(
        self, run_id: int, status: RunStatus, reason: str | None, warnings: bool, epoch: int | None = None
    ) -> bool:
        """Make the run final in one fenced write; a step left running by a lost process ends
        ``error``, steps that never ran end ``skipped``; a cancel acknowledged before this write
        makes it ``cancelled`` (see ``Store.leases.finish_run``). False when the run was already final."""
        return self.app.store.leases.finish_run(run_id, status, reason, epoch=epoch, has_warnings=warnings) is not None

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
                hint=f"check that {self.app.state_dir} is writable and its disk has room",
            )
        scrubber = Scrubber([*secrets.values(), *_known_secrets(self.app.loaded, run.environment)])
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
                lambda: self.app.store.runs.finish_step(
                    run.id, pending[0], StepStatus.ERROR, None, clock.now(), log_path=log_rel, epoch=epoch
                )
            )
        retry(lambda: self.finish(run.id, RunStatus.ERROR, reason, False, epoch=epoch))
        return error


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
