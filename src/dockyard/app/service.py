"""The App's server-side behaviour: the queue, cancellation, retries, triggers, status.

Mixed into :class:`dockyard.app.App`; every front-end (CLI, API, scheduler, workers)
goes through these methods.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import timedelta

from dockyard import clock
from dockyard.domain import RunRecord, RunStatus
from dockyard.errors import ConflictError, DockyardError

log = logging.getLogger("dockyard.app.service")
RETRY_LOG_TAIL_BYTES = 1 << 20  # how much of a failed step's log the retry classification reads


class ServiceOps:
    """Needs ``self.store``, ``self.config``, ``self.jobs()``, ``self.job()``, ``self.loaded``."""

    def job_ids(self) -> dict[str, int]:
        return {j.name: j.id for j in self.jobs()}

    def enqueue(
        self,
        ref: str | int,
        *,
        environment: str | None = None,
        trigger: str = "manual",
        cause: str | None = None,
        scheduled_for=None,
        fire_key: str | None = None,
        commands: list[str] | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
        not_before=None,
        overrides: dict | None = None,
        git_sha: str | None = None,
        git_branch: str | None = None,
        coalesce: bool | None = None,
    ):
        """Queue a run of a job for the workers; returns the store's EnqueueResult."""
        record, job = self.job(ref)
        env_name = environment or job.environment
        if env_name not in self.config.environments:
            raise DockyardError(
                f"no environment '{env_name}'", hint=f"environments: {', '.join(self.config.environments)}"
            )
        if coalesce is None:
            coalesce = not job.allow_overlap and trigger != "retry"
        return self.store.enqueue(
            record.id,
            record.name,
            env_name,
            commands or job.all_commands,
            trigger=trigger,
            cause=cause or f"Triggered {trigger}",
            scheduled_for=scheduled_for,
            fire_key=fire_key,
            priority=job.priority,
            attempt=attempt,
            retry_of=retry_of,
            overrides=overrides,
            git_sha=git_sha,
            git_branch=git_branch,
            not_before=not_before,
            coalesce=coalesce,
        )

    def cancel(self, run_id: int, *, final_ok: bool = False) -> str:
        """Cancel a run: a queued run at once; an active run through its worker (SIGINT to
        dbt, grace period, kill). Returns "cancelled" or "requested"; once "requested" is
        answered (the flag is committed) the run ends ``cancelled`` whatever its last step
        did (the run's final write reads the flag, see ``Store.finish_run``). A run that had
        already ended raises :class:`ConflictError` naming its status (returns "final"
        with ``final_ok``: dbt Cloud's cancel answers the unchanged run)."""
        outcome = self.store.request_cancel(run_id)
        if outcome == "final" and not final_ok:
            run = self.store.get_run(run_id)
            raise ConflictError(
                f"run {run_id} already ended with status {run.status.value}"
                + (f" ({run.reason})" if run.reason else ""),
                hint="only a queued or running run can be cancelled; nothing was changed",
            )
        return outcome

    def maybe_retry(self, run_id: int) -> int | None:
        """Queue the next attempt of a failed run when its job's retry policy allows; only
        the failed and never-reached nodes are re-run. Exactly once per failed run."""
        from dockyard.retry import failed_step, has_default_selector, retry_steps, should_retry

        run = self.store.get_run(run_id)
        if getattr(run, "cancel_requested_at", None) is not None:
            return None  # someone asked to stop it: never start it again by itself
        try:
            _, job = self.job(run.job_id if run.job_id is not None else run.job)
        except DockyardError:
            return None
        step = failed_step(run)
        log_text = None
        if step is not None:
            try:  # the end of the log, where dbt reports the error (a step log can be huge)
                log_text = self.run_log(run.id, step.index, tail=RETRY_LOG_TAIL_BYTES)
            except (DockyardError, OSError):
                log_text = None
        if run.status != RunStatus.ERROR or not should_retry(run, job.retries, log_text):
            return None
        steps = retry_steps(run, default_selector=has_default_selector(self.project.project_dir))
        if not steps:
            return None
        backoff = job.retries.backoff_seconds * (2 ** (run.attempt - 1))
        result = self.enqueue(
            job.name,
            environment=run.environment,
            trigger="retry",
            cause=f"Retry {run.attempt + 1} of run {run.id} ({run.reason})",
            fire_key=f"retry:{run.id}",
            commands=[s.command for s in steps],
            attempt=run.attempt + 1,
            retry_of=run.id,
            coalesce=False,
            not_before=clock.now() + timedelta(seconds=backoff),
        )
        return result.run_id if result.created else None

    def queue_rerun(self, run_id: int, *, from_failure: bool = True, cause: str | None = None):
        """Like :meth:`App.rerun`, but queued for the workers (the API's rerun): a new run of
        the same job and environment, trigger ``retry``, ``attempt`` + 1, ``retry_of`` the old
        run, with the old run's trigger overrides. Returns the store's EnqueueResult."""
        from dockyard.retry import has_default_selector, retry_steps

        old = self.store.get_run(run_id)
        if not old.status.is_final:
            raise ConflictError(
                f"run {run_id} is still {old.status.value}", hint="wait for it to finish (or cancel it), then rerun it"
            )
        if old.status == RunStatus.SUCCESS:
            raise ConflictError(
                f"run {run_id} succeeded: there is nothing to re-run", hint="trigger the job again instead"
            )
        record, _ = self.job(old.job_id if old.job_id is not None else old.job)
        if from_failure:
            default = has_default_selector(self.project.project_dir)
            commands = [s.command for s in retry_steps(old, default_selector=default)]
        else:
            commands = [s.command for s in sorted(old.steps, key=lambda s: s.index)]
        if not commands:
            raise ConflictError(
                f"run {run_id} has no failed step to re-run from", hint="re-run all of its commands instead"
            )
        overrides = {
            k: v
            for k, v in (getattr(old, "overrides", None) or {}).items()
            if k not in ("steps_override", "generate_docs_override")
        } or None
        return self.enqueue(
            record.id,
            environment=old.environment,
            trigger="retry",
            cause=cause or f"Rerun of run {old.id}" + (" from failure" if from_failure else ""),
            commands=commands,
            attempt=old.attempt + 1,
            retry_of=old.id,
            overrides=overrides,
            git_sha=getattr(old, "git_sha", None),
            git_branch=getattr(old, "git_branch", None),
            coalesce=False,
        )

    def stop_lost_process(self, reaped) -> threading.Thread | None:
        """Kill what is left of a lost run's dbt process group, when it ran on this host, and
        cancel the warehouse queries it may have left running (in a thread, so that a slow
        warehouse does not delay the scheduler; the thread is returned)."""
        if reaped.pgid and reaped.host == socket.gethostname():
            try:
                os.killpg(reaped.pgid, signal.SIGKILL)
                log.info("run %s: killed leftover dbt process group %s", reaped.run_id, reaped.pgid)
            except (ProcessLookupError, PermissionError):
                pass
        if not (reaped.warehouse_sessions and reaped.environment in self.config.environments):
            return None
        thread = threading.Thread(
            target=self._sweep_lost_sessions, args=(reaped,), daemon=True, name=f"sweep-run-{reaped.run_id}"
        )
        thread.start()
        return thread

    def _sweep_lost_sessions(self, reaped) -> None:
        from dockyard.project import dbt_environment, resolve_secrets
        from dockyard.runner.sessions import PostgresWarehouse, sessions_from_doc

        doc, env_name = reaped.warehouse_sessions, reaped.environment
        try:
            env = self.config.environments[env_name]
            output = self.project.output_in(
                doc.get("profiles_dir") or "", doc.get("target") or ""
            ) or self.project.output_in(self.project.profiles_dir(env), doc.get("target") or "")
            env_vars = dbt_environment(self.loaded, env_name, resolve_secrets(self.loaded, env_name), reaped.run_id)
            warehouse = PostgresWarehouse.from_output(output, env_vars)
            if warehouse is None:
                return
            found = warehouse.cancel_leftovers(sessions_from_doc(doc))
        except Exception as exc:  # noqa: BLE001 - a thread of its own: report, never raise
            log.warning(
                "run %s: could not cancel the warehouse sessions of its lost dbt: %s: %s",
                reaped.run_id,
                type(exc).__name__,
                getattr(exc, "what", "") or "see the warehouse log",
            )
            return
        if found:
            log.info("run %s: cancelled %d warehouse session(s) its lost dbt left running", reaped.run_id, found)

    def after_run(self, run: RunRecord) -> None:
        """Hook for what follows a finished run (completion triggers are fired by the
        scheduler from the store, so nothing is lost if this process dies here)."""

    def deploy(self) -> dict[str, int]:
        """Re-sync environments and jobs from dockyard.yml into the store."""
        return self.sync()

    def reload(self, loaded) -> None:
        """Switch to a newly loaded (valid) config; the next call re-syncs jobs."""
        self.loaded, self.config = loaded, loaded.config
        self.__dict__.pop("project", None)
        self._synced = False

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
