"""``app.runs``: runs as every front-end sees them: list, search, get (each one after the
lost-run check, so the CLI and the API answer the same for a run whose process died), logs
(whole, per step, tails, followed), artifacts, cancel, rerun (queued or foreground), retries,
and what is left of lost runs."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import clock, files
from dockyard.domain import RunRecord, RunStatus, StepStatus
from dockyard.errors import (
    DockyardError,
    NotFoundError,
    NotRerunnableError,
    RunActiveError,
    RunFinalError,
    UnknownEnvironmentError,
)
from dockyard.store.records import StoredRun
from dockyard.store.search import RunSearch

if TYPE_CHECKING:
    from dockyard.app.recorder import RunObserver

log = logging.getLogger("dockyard.app.runs")
ACTIVE = {RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING}
RETRY_LOG_TAIL_BYTES = 1 << 20  # how much of a failed step's log the retry classification reads
FOLLOW_CHUNK = 65536

#: A run as the store keeps it (overrides, git ref, lease, ...): what front-ends render.
Run = StoredRun


@dataclass
class LogFollow:
    """Reads a run's step logs as they grow: :meth:`read` returns what is new (``b""``: nothing
    yet), :attr:`done` is true once the run is final and everything was read, or ``limit``
    bytes were sent."""

    runs: Runs
    run_id: int
    step: int | None = None
    limit: int | None = None
    done: bool = False
    offsets: dict[int, int] = field(default_factory=dict)
    sent: int = 0

    def read(self) -> bytes:
        run = self.runs.summary(self.run_id)
        root = self.runs.folder(run) / "logs"
        out: list[bytes] = []
        for s in run.steps:
            if self.step is not None and s.index != self.step:
                continue
            if s.index not in self.offsets:
                if s.status == StepStatus.QUEUED and not run.status.is_final:
                    break
                self.offsets[s.index] = 0
                out.append(f"== step {s.index}: {s.command} ==\n".encode())
            while self.limit is None or self.sent < self.limit:
                room = FOLLOW_CHUNK if self.limit is None else min(FOLLOW_CHUNK, self.limit - self.sent)
                data = files.read_from(root, f"step-{s.index}.log", self.offsets[s.index], room)
                if not data:
                    break
                self.offsets[s.index] += len(data)
                self.sent += len(data)
                out.append(data)
            if self.limit is not None and self.sent >= self.limit:
                out.append(f"\n[dockyard: {self.limit // (1024 * 1024)} MiB log limit reached]\n".encode())
                self.done = True
                return b"".join(out)
            if s.status in (StepStatus.QUEUED, StepStatus.RUNNING) and not run.status.is_final:
                break  # later steps come after this one
        if run.status.is_final:
            self.done = True
        return b"".join(out)


class Runs:
    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    @property
    def store(self):
        return self.app.store

    # -- reading ------------------------------------------------------------------------------
    def list(
        self, *, job: str | int | None = None, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[Run]:
        job_ref: int | str | None = None
        if job is not None:
            job_ref = self.app.jobs.get(job).id
        self.reap_lost()
        return self.store.reader.runs.list_runs(job=job_ref, status=status, limit=limit, offset=offset)

    def search(self, **filters: Any) -> tuple[list[Run], int]:
        """Runs by the filters of :class:`dockyard.store.search.RunSearch` (``job_ids``,
        ``statuses``, ``environments``, ``triggers``, ``created``, ``finished``, ``before_id``,
        ``after_id``, ``order_by``, ``limit``, ``offset``, ``with_steps``), with the total."""
        self.reap_lost()
        return self.store.reader.runs.search_runs(RunSearch(**filters))

    def get(self, run_id: int) -> Run:
        """One run with its steps, nodes and artifacts (:class:`UnknownRunError` otherwise)."""
        self.reap_lost()
        return self.store.reader.runs.get_run(run_id)

    def summary(self, run_id: int, *, with_steps: bool | None = True) -> Run:
        """One run without its node results (cheaper: for lists, polling, logs)."""
        self.reap_lost()
        return self.store.reader.runs.get_run_summary(run_id, with_steps=with_steps)

    def latest(self, job_id: int, *, status: str | None = None, with_steps: bool = True) -> Run | None:
        """The job's newest run (with ``status``: the newest with that status)."""
        found, _ = self.search(job_ids=[job_id], statuses=[status] if status else None, limit=1, with_steps=with_steps)
        return self.store.reader.runs.get_run_summary(found[0].id) if found else None

    def count(self, *, job: int | None = None, status: str | None = None) -> int:
        return self.store.reader.runs.count_runs(job=job, status=status)

    # -- files --------------------------------------------------------------------------------
    def folder(self, run: RunRecord | int) -> Path:
        """The run's folder (``logs/``, ``artifacts/``)."""
        if isinstance(run, int):
            run = self.store.reader.runs.get_run_summary(run, with_steps=False)
        return Path(run.artifacts_dir) if run.artifacts_dir else self.app.state_dir / "runs" / str(run.id)

    def step_log(self, run: RunRecord, index: int, *, tail: int | None = None) -> str | None:
        """One step's log (its last ``tail`` bytes when given); None when it has none."""
        root = self.folder(run) / "logs"
        name = f"step-{index}.log"
        if not files.exists(root, name):
            return None
        return files.read_text(root, name, tail=tail)

    def logs(
        self, run_id: int | RunRecord, step: int | None = None, *, tail: int | None = None, budget: int | None = None
    ) -> str:
        """The steps' logs under a ``== step N: command ==`` line each (``step``: that one):
        each one's last ``tail`` bytes, and at most ``budget`` bytes in all, when given (a log
        can be huge)."""
        run = self.summary(run_id) if isinstance(run_id, int) else run_id
        if step is not None and step not in {s.index for s in run.steps}:
            raise NotFoundError(f"run {run.id} has no step {step}", hint=f"steps are numbered 1 to {len(run.steps)}")
        parts = []
        for s in sorted(run.steps, key=lambda s: s.index):
            if step is not None and s.index != step:
                continue
            limit = tail if budget is None else (budget if tail is None else min(tail, budget))
            body = self.step_log(run, s.index, tail=limit)
            body = "(no log)\n" if body is None else body
            if budget is not None:
                budget = max(0, budget - len(body))
            parts.append(f"== step {s.index}: {s.command} ==\n{body}")
        return "\n".join(parts)

    def follow(self, run_id: int, step: int | None = None, *, limit: int | None = None) -> LogFollow:
        """A reader of the run's logs as they are written (see :class:`LogFollow`)."""
        run = self.summary(run_id)
        if step is not None and step not in {s.index for s in run.steps}:
            raise NotFoundError(f"run {run.id} has no step {step}", hint=f"steps are numbered 1 to {len(run.steps)}")
        return LogFollow(self, run_id, step, limit)

    def iter_follow(self, run_id: int, step: int | None = None, *, poll_s: float = 0.5) -> Iterator[bytes]:
        """The logs as a blocking iterator, until the run is final (for a terminal)."""
        import time

        reader = self.follow(run_id, step)
        while True:
            data = reader.read()
            if data:
                yield data
            if reader.done:
                return
            time.sleep(poll_s)

    def artifacts(self, run_id: int) -> list:
        """The run's artifacts (step, name, path inside the artifacts folder, size, sha256)."""
        return list(self.summary(run_id, with_steps=False).artifacts)

    def artifact_root(self, run: RunRecord | int, step: int | None = None) -> Path:
        """The run's artifacts folder (``step``: that step's)."""
        root = self.folder(run) / "artifacts"
        return root / f"step-{step}" if step is not None else root

    def artifact_path(self, run_id: int, relpath: str) -> Path:
        try:
            return files.resolve(self.artifact_root(run_id), relpath)
        except files.OutsideRoot:
            raise NotFoundError(f"run {run_id} has no artifact {relpath!r}") from None

    def docs_root(self, run_id: int) -> Path:
        """The folder of the dbt docs site the run generated (its last ``docs generate``)."""
        run = self.summary(run_id, with_steps=False)
        steps = sorted({a.step_index for a in run.artifacts if a.name == "index.html"})
        if not steps:
            raise NotFoundError(f"run {run_id} generated no docs", hint="add 'dbt docs generate' to the job")
        return self.artifact_root(run, steps[-1])

    # -- figures --------------------------------------------------------------------------------
    def model_durations(self, **filters: Any) -> list[dict]:
        return self.store.reader.stats.model_durations(**filters)

    def test_results(self, **filters: Any) -> list[dict]:
        return self.store.reader.stats.test_results(**filters)

    # -- changing runs ------------------------------------------------------------------------
    def cancel(self, run_id: int, *, final_ok: bool = False) -> str:
        """Cancel a run: a queued run at once; an active run through its worker (SIGINT to
        dbt, grace period, kill). Returns "cancelled" or "requested"; once "requested" is
        answered (the flag is committed) the run ends ``cancelled`` whatever its last step
        did (the run's final write reads the flag, see ``Store.leases.finish_run``). A run that had
        already ended raises :class:`RunFinalError` naming its status (returns "final"
        with ``final_ok``: dbt Cloud's cancel answers the unchanged run)."""
        self.reap_lost()
        outcome = self.store.leases.request_cancel(run_id)
        if outcome == "final" and not final_ok:
            run = self.store.reader.runs.get_run_summary(run_id, with_steps=False)
            raise RunFinalError(
                f"run {run_id} already ended with status {run.status.value}"
                + (f" ({run.reason})" if run.reason else ""),
                hint="only a queued or running run can be cancelled; nothing was changed",
            )
        return outcome

    def rerun_plan(self, run_id: int, *, from_failure: bool = True):
        """What re-running a run repeats: ``(old run, job record, job, commands)``. Raises
        :class:`RunActiveError` (still active), :class:`NotRerunnableError` (it succeeded, or
        has no failed step), :class:`UnknownJobError`, :class:`UnknownEnvironmentError`."""
        from dockyard.retry import has_default_selector, retry_steps

        old = self.get(run_id)
        if not old.status.is_final:
            raise RunActiveError(
                f"run {run_id} is still {old.status.value}", hint="wait for it to finish (or cancel it), then rerun it"
            )
        if old.status == RunStatus.SUCCESS:
            raise NotRerunnableError(
                f"run {run_id} succeeded: there is nothing to re-run",
                hint=f"run the job again (dockyard run {old.job_id or old.job}, or trigger it)",
            )
        view = self.app.jobs.get(old.job_id if old.job_id is not None else old.job)
        if old.environment not in self.app.config.environments:
            raise UnknownEnvironmentError(
                f"run {run_id} ran in environment '{old.environment}', which is no longer configured",
                hint=f"environments: {', '.join(self.app.config.environments)}",
            )
        if from_failure:
            default = has_default_selector(self.app.project.project_dir)
            commands = [s.command for s in retry_steps(old, default_selector=default)]
        else:
            commands = [s.command for s in sorted(old.steps, key=lambda s: s.index)]
        if not commands:
            raise NotRerunnableError(
                f"run {run_id} has no failed step to re-run from",
                hint=f"re-run all of its commands (dockyard rerun {run_id} --all, or from_failure: false)",
            )
        return old, view.record, view.config, commands

    def rerun(
        self,
        run_id: int,
        *,
        from_failure: bool = True,
        queued: bool = True,
        cause: str | None = None,
        observer: RunObserver | None = None,
        on_start=None,
    ):
        """Run a failed or cancelled run again as a new run of the same job and environment
        (trigger ``retry``, ``attempt`` + 1, ``retry_of`` the old run). With
        ``from_failure``, the failed step for its nodes that did not complete, then the later
        steps (:func:`dockyard.retry.retry_steps`); otherwise every command of the old run.
        ``queued``: for the workers, with the old run's trigger overrides (returns the
        store's EnqueueResult); otherwise in the foreground (returns the final run)."""
        old, record, job, commands = self.rerun_plan(run_id, from_failure=from_failure)
        cause = cause or f"Rerun of run {old.id}" + (" from failure" if from_failure else "")
        if not queued:
            return self.app.execution.run_foreground(
                record,
                job,
                old.environment,
                commands,
                trigger="retry",
                cause=cause,
                attempt=old.attempt + 1,
                retry_of=old.id,
                observer=observer,
                on_start=on_start,
            )
        overrides = {
            k: v for k, v in (old.overrides or {}).items() if k not in ("steps_override", "generate_docs_override")
        } or None
        return self.app.triggers.enqueue(
            record.id,
            environment=old.environment,
            trigger="retry",
            cause=cause,
            commands=commands,
            attempt=old.attempt + 1,
            retry_of=old.id,
            overrides=overrides,
            git_sha=old.git_sha,
            git_branch=old.git_branch,
            coalesce=False,
        )

    def maybe_retry(self, run_id: int) -> int | None:
        """Queue the next attempt of a failed run when its job's retry policy allows; only
        the failed and never-reached nodes are re-run. Exactly once per failed run."""
        from dockyard.retry import failed_step, has_default_selector, retry_steps, should_retry

        run = self.store.reader.runs.get_run(run_id)
        if run.cancel_requested_at is not None:
            return None  # someone asked to stop it: never start it again by itself
        try:
            job = self.app.jobs.get(run.job_id if run.job_id is not None else run.job).config
        except DockyardError:
            return None
        step = failed_step(run)
        log_text = None
        if step is not None:
            try:  # the end of the log, where dbt reports the error (a step log can be huge)
                log_text = self.logs(run, step.index, tail=RETRY_LOG_TAIL_BYTES)
            except (DockyardError, OSError):
                log_text = None
        if run.status != RunStatus.ERROR or not should_retry(run, job.retries, log_text):
            return None
        steps = retry_steps(run, default_selector=has_default_selector(self.app.project.project_dir))
        if not steps:
            return None
        backoff = job.retries.backoff_seconds * (2 ** (run.attempt - 1))
        result = self.app.triggers.enqueue(
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

    # -- lost runs ----------------------------------------------------------------------------
    def reap_lost(self) -> list[int]:
        """Mark as ``error``/``worker_lost`` the runs a dead foreground process on this host
        left active (a ``dockyard run`` killed with SIGKILL). Every read above does this
        first, so every front-end answers the same for such a run."""
        host = socket.gethostname()
        lost = []
        for run in self.store.reader.runs.list_runs(status=[s.value for s in ACTIVE], limit=100):
            # foreground runs are owned by "host:pid"; a worker's ("host:pid:worker:id") are
            # reaped by the scheduler from their heartbeats
            parts = (run.worker_id or "").split(":")
            if len(parts) != 2 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid == os.getpid() or _alive(pid):
                continue
            if self.app.execution.finish(run.id, RunStatus.ERROR, "worker_lost", False):
                lost.append(run.id)
        return lost

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
        if not (reaped.warehouse_sessions and reaped.environment in self.app.config.environments):
            return None
        thread = threading.Thread(
            target=self._sweep_lost_sessions, args=(reaped,), daemon=True, name=f"sweep-run-{reaped.run_id}"
        )
        thread.start()
        return thread

    def _sweep_lost_sessions(self, reaped) -> None:
        from dockyard.project import dbt_environment, resolve_secrets
        from dockyard.runner.sessions import PostgresWarehouse, sessions_from_doc

        app = self.app
        doc, env_name = reaped.warehouse_sessions, reaped.environment
        try:
            env = app.config.environments[env_name]
            output = app.project.output_in(
                doc.get("profiles_dir") or "", doc.get("target") or ""
            ) or app.project.output_in(app.project.profiles_dir(env), doc.get("target") or "")
            env_vars = dbt_environment(app.loaded, env_name, resolve_secrets(app.loaded, env_name), reaped.run_id)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
