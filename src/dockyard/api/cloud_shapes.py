"""dbt Cloud's run, run step and trigger objects, and the per-step artifact layout (§4, §7).

``run_steps`` starts with the three steps every dbt Cloud run has (clone, profile, deps;
clients such as prefect-dbt skip ``index <= 3``), then one ``Invoke dbt with `<command>```
step per command, numbered from 1. A run that failed or was cancelled lists its steps (without
logs) even when ``include_related`` does not ask for them: prefect-dbt's targeted retry
(``DbtCloudJobRun.retry_failed_steps``) reads ``run_steps`` from a plain ``GET runs/{id}``
to find the failed step. Artifacts are listed relative to dbt's target folder
and accumulate over the steps: ``?step=N`` shows what the target folder held after step N.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dockyard import clock
from dockyard.api.cloud_objects import PROJECT_ID, Catalog, humanize, ts
from dockyard.app import Run as StoredRun
from dockyard.domain import RunStatus, StepStatus
from dockyard.overrides import dbt_version

HUMAN = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}
STEP_CODES = {
    StepStatus.QUEUED: (1, "Queued"),
    StepStatus.RUNNING: (3, "Running"),
    StepStatus.SUCCESS: (10, "Success"),
    StepStatus.ERROR: (20, "Error"),
    StepStatus.CANCELLED: (30, "Cancelled"),
    StepStatus.SKIPPED: (30, "Skipped"),
}
SYNTHETIC = 3  # clone, profile, deps
DEBUG_TAIL_LINES = 1000
LOG_TAIL_BYTES = 1024 * 1024
LOG_BUDGET = 5 * 1024 * 1024  # per run: logs + debug_logs stay within S7's 10 MiB per request
REASONS = {
    "step_failed": "a step failed",
    "timeout": "the run timed out",
    "worker_lost": "the process running dbt was lost",
    "internal_error": "dockyard failed",
    "start_timeout": "the run did not start in time",
    "setup_failed": "the run could not start (see its log)",
}


def _hms(seconds: float | None) -> str:
    seconds = int(max(seconds or 0, 0))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _span(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return max(0.0, ((end or clock.now()) - start).total_seconds())


def status_message(run: StoredRun) -> str | None:
    if run.status == RunStatus.CANCELLED:
        return "Cancelled by user."
    if run.status != RunStatus.ERROR:
        return None
    failed = next((s for s in run.steps if s.status in (StepStatus.ERROR, StepStatus.CANCELLED)), None)
    text = REASONS.get(run.reason or "", run.reason or "the run failed")
    if failed is not None:
        text += f": step {failed.index + SYNTHETIC} `{failed.command}` ended {failed.status.value}"
    return text[0].upper() + text[1:]


def href(cat: Catalog, base_url: str, run_id: int) -> str:
    return f"{base_url.rstrip('/')}/deploy/{cat.account_id}/projects/{PROJECT_ID}/runs/{run_id}/"


def trigger_object(run: StoredRun, job_id: int | None) -> dict[str, Any]:
    ov = run.overrides or {}
    category = {
        "schedule": "scheduled",
        "ci": "github_pull_request",
        "api": "api",
        "retry": "retry",
        "job_completion": "job_completion",
    }.get(run.trigger, "other")
    return {
        "id": run.id,
        "cause": run.cause,
        "cause_humanized": run.cause,
        "cause_category": category,
        "job_definition_id": job_id,
        "git_branch": run.git_branch,
        "git_sha": run.git_sha,
        **{
            k: ov.get(k)
            for k in (
                "azure_pull_request_id",
                "github_pull_request_id",
                "gitlab_merge_request_id",
                "non_native_pull_request_id",
                "schema_override",
                "dbt_version_override",
                "threads_override",
                "target_name_override",
                "generate_docs_override",
                "timeout_seconds_override",
                "steps_override",
            )
        },
        "created_at": ts(run.created_at),
    }


def artifact_names(run: StoredRun, step: int | None = None) -> dict[str, str]:
    """Name → stored path of the artifacts visible after cloud step ``step`` (None: all)."""
    limit = None if step is None else step - SYNTHETIC
    out: dict[str, str] = {}
    for ref in sorted(run.artifacts, key=lambda a: a.step_index):
        if limit is None or ref.step_index <= limit:
            out[ref.name] = ref.path
    return dict(sorted(out.items()))


def _log(cat: Catalog, run: StoredRun, index: int, tail_bytes: int) -> str:
    return cat.app.runs.step_log(run, index, tail=tail_bytes) or ""


def run_steps(
    cat: Catalog, run: StoredRun, *, full_debug: bool, log_tail: int = LOG_TAIL_BYTES, with_logs: bool = True
) -> list[dict[str, Any]]:
    """``log_tail``: bytes of each step's log (the end of it); lists use less. Without
    ``with_logs``, ``logs`` and ``debug_logs`` are empty (no log file is read)."""
    started = run.started_at is not None
    if started:
        pre = (10, "Success")
    elif run.status.is_final:
        pre = (30, "Skipped")
    else:
        pre = (1, "Queued")
    adapter = cat.adapter(run.environment).capitalize()
    steps: list[dict[str, Any]] = []
    names = ["Clone Git Repository", f"Create Profile from Connection {adapter} ", "Invoke dbt with `dbt deps`"]
    for i, name in enumerate(names, start=1):
        logs = "" if not started else f"{name.strip()}: done by dockyard (the project is local)"
        steps.append(_step(cat, run, i, name, pre, logs, logs, run.started_at, run.started_at))
    per_step = min(log_tail, max(4096, LOG_BUDGET // max(1, len(run.steps))))
    for step in run.steps:
        code = STEP_CODES.get(step.status, (1, "Queued"))
        logs = _log(cat, run, step.index, per_step) if with_logs else ""
        debug = logs if full_debug else "\n".join(logs.splitlines()[-DEBUG_TAIL_LINES:])
        steps.append(
            _step(
                cat,
                run,
                step.index + SYNTHETIC,
                f"Invoke dbt with `{step.command}`",
                code,
                logs,
                debug,
                step.started_at,
                step.finished_at,
            )
        )
    return steps


def _step(
    cat: Catalog,
    run: StoredRun,
    index: int,
    name: str,
    code: tuple[int, str],
    logs: str,
    debug: str,
    started: datetime | None,
    finished: datetime | None,
) -> dict[str, Any]:
    seconds = _span(started, finished) if started else None
    return {
        "id": run.id * 1000 + index,
        "run_id": run.id,
        "account_id": cat.account_id,
        "index": index,
        "name": name,
        "status": code[0],
        "status_humanized": code[1],
        "status_message": None,
        "logs": logs,
        "debug_logs": debug,
        "log_path": None,
        "debug_log_path": None,
        "truncated_debug_logs": None,
        "log_archive_type": None,
        "log_location": None,
        "created_at": ts(run.created_at),
        "updated_at": ts(finished or started or run.created_at),
        "started_at": ts(started),
        "finished_at": ts(finished),
        "duration": _hms(seconds),
        "duration_humanized": humanize(seconds or 0),
    }


def run_object(
    cat: Catalog,
    run: StoredRun,
    base_url: str,
    *,
    include: set[str] | frozenset[str] = frozenset(),
    job: dict | None = None,
    environment: dict | None = None,
    log_tail: int = LOG_TAIL_BYTES,
) -> dict[str, Any]:
    code = run.status.code
    now = clock.now()
    total = _span(run.created_at, run.finished_at)
    queued = _span(run.created_at, run.started_at or (run.finished_at if run.status.is_final else None))
    running = _span(run.started_at, run.finished_at) if run.started_at else 0
    names = artifact_names(run)
    env_id = cat.env_id(run.environment)
    out: dict[str, Any] = {
        "id": run.id,
        "trigger_id": run.id,
        "account_id": cat.account_id,
        "environment_id": env_id,
        "project_id": PROJECT_ID,
        "job_definition_id": run.job_id,
        "job_id": run.job_id,
        "status": code,
        "status_humanized": HUMAN[code],
        "status_message": status_message(run),
        "dbt_version": dbt_version(),
        "git_branch": run.git_branch,
        "git_sha": run.git_sha,
        "in_progress": code in (1, 2, 3),
        "is_complete": code in (10, 20, 30),
        "is_success": code == 10,
        "is_error": code == 20,
        "is_cancelled": code == 30,
        "is_running": code == 3,
        "href": href(cat, base_url, run.id),
        "created_at": ts(run.created_at),
        "updated_at": ts(run.updated_at or run.created_at),
        "dequeued_at": ts(run.claimed_at or run.started_at),
        "started_at": ts(run.started_at),
        "finished_at": ts(run.finished_at),
        "should_start_at": ts(run.not_before or run.created_at),
        "last_checked_at": ts(run.heartbeat_at),
        "last_heartbeat_at": ts(run.heartbeat_at),
        "duration": _hms(total),
        "queued_duration": _hms(queued),
        "run_duration": _hms(running),
        "duration_humanized": humanize(total or 0),
        "queued_duration_humanized": humanize(queued or 0),
        "run_duration_humanized": humanize(running or 0),
        "created_at_humanized": f"{humanize((now - run.created_at).total_seconds())} ago" if run.created_at else None,
        "finished_at_humanized": (
            f"{humanize((now - run.finished_at).total_seconds())} ago" if run.finished_at else "0 minutes from now"
        ),
        "artifacts_saved": bool(names),
        "artifact_s3_path": None,
        "has_docs_generated": "catalog.json" in names or "index.html" in names,
        "has_sources_generated": "sources.json" in names,
        "notifications_sent": run.status.is_final,
        "blocked_by": [],
        "deferring_run_id": None,
        "owner_thread_id": None,
        "executed_by_thread_id": run.worker_id,
        "scribe_enabled": False,
        "used_repo_cache": False,
        "retrying_run_id": run.retry_of,
        "can_retry": run.status == RunStatus.ERROR,
        "retry_not_supported_reason": None if run.status == RunStatus.ERROR else "RETRY_NOT_FAILED_RUN",
        "reason": run.reason,
        "attempt": run.attempt,
        "trigger": None,
        "job": None,
        "environment": None,
        "run_steps": [],
    }
    if "trigger" in include:
        out["trigger"] = trigger_object(run, run.job_id)
    if "job" in include:
        out["job"] = job
    if "environment" in include:
        out["environment"] = environment
    if "run_steps" in include:
        out["run_steps"] = run_steps(cat, run, full_debug="debug_logs" in include, log_tail=log_tail)
    elif run.status in (RunStatus.ERROR, RunStatus.CANCELLED) and run.steps:
        out["run_steps"] = run_steps(cat, run, full_debug=False, with_logs=False)  # prefect-dbt's retry
    return out
