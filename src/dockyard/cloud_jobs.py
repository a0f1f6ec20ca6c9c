"""dbt Cloud job definitions: API payloads → stored jobs, and jobs → dbt Cloud job fields.

Jobs from dockyard.yml are shown in dbt Cloud's shape; jobs created through the API keep
every writable field of their payload verbatim (so dbt-jobs-as-code sees no diff), and
server-owned fields (``id``, ``account_id``, ``project_id``, ``state``, timestamps, ...)
are never stored from a request body.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard.config.model import Job
from dockyard.dbt.command import CommandError, parse_command
from dockyard.domain import JobRecord
from dockyard.errors import DockyardError, UnknownEnvironmentError
from dockyard.schedule import check_cron
from dockyard.text import control_problem

DEFAULT_CRON = "0 * * * *"

#: Writable job fields, with the defaults a create body may omit (spec §6.2).
DEFAULTS: dict[str, Any] = {
    "name": None,
    "description": "",
    "environment_id": None,
    "dbt_version": None,
    "execute_steps": ["dbt build"],
    "generate_docs": False,
    "run_generate_sources": False,
    "settings": {"threads": 4, "target_name": "default"},
    "execution": {"timeout_seconds": 0},
    "triggers": {
        "github_webhook": False,
        "git_provider_webhook": False,
        "schedule": False,
        "on_merge": False,
        "custom_branch_only": False,
    },
    "schedule": {"cron": DEFAULT_CRON, "date": {"type": "every_day"}, "time": {"type": "every_hour", "interval": 1}},
    "job_type": "other",
    "deferring_job_definition_id": None,
    "deferring_environment_id": None,
    "triggers_on_draft_pr": False,
    "run_compare_changes": False,
    "compare_changes_flags": "--select state:modified",
    "run_lint": False,
    "errors_on_lint_failure": True,
    "cost_optimization_features": [],
    "force_node_selection": None,
    "job_completion_trigger_condition": None,
    "lifecycle_webhooks": False,
    "lifecycle_webhooks_url": None,
}
WRITABLE = frozenset(DEFAULTS)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _int(value: Any, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DockyardError(f"{field} must be an integer") from None
    if not low <= number <= high:
        raise DockyardError(f"{field} must be between {low} and {high}")
    return number


def merge_payload(body: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's cloud fields after a create (``current`` None) or an update: only writable
    fields are taken from ``body``; nulls in an update keep nothing special (they are values)."""
    cloud = copy.deepcopy(current) if current is not None else copy.deepcopy(DEFAULTS)
    for key, value in body.items():
        if key not in WRITABLE:
            continue  # read-only or unknown: never stored
        if value is None and current is None and DEFAULTS[key] is not None:
            continue  # a create body's null means "the default"
        cloud[key] = copy.deepcopy(value)
    return cloud


def validate(cloud: dict[str, Any], environments: dict[int, str]) -> tuple[str, str, str | None]:
    """Check a job's cloud fields; returns (name, environment name, cron or None)."""
    name = cloud.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 150:
        raise DockyardError("name is required (1 to 150 characters)")
    if problem := control_problem(name, "name"):
        raise DockyardError(problem, hint="job names are shown in terminals and logs; use printable characters")
    env_id = cloud.get("environment_id")
    try:
        env_name = environments[int(env_id)]
    except (TypeError, ValueError, KeyError):
        known = ", ".join(f"{i} ({n})" for i, n in sorted(environments.items()))
        raise UnknownEnvironmentError(
            f"environment_id {env_id!r} is not an environment of this project", hint=f"environments: {known}"
        ) from None
    cloud["environment_id"] = int(env_id)
    steps = cloud.get("execute_steps")
    if not isinstance(steps, list) or not steps or len(steps) > 100 or not all(isinstance(s, str) for s in steps):
        raise DockyardError("Invalid dbt commands: execute_steps must be a list of 1 to 100 dbt commands")
    for text in steps:
        try:
            parse_command(text)
        except CommandError as exc:
            raise DockyardError(f"Invalid dbt commands: {text!r}: {exc}") from None
    settings = cloud.get("settings") if isinstance(cloud.get("settings"), dict) else {}
    if settings.get("threads") is not None:
        settings["threads"] = _int(settings["threads"], "settings.threads", 1, 64)
    cloud["settings"] = settings
    execution = cloud.get("execution") if isinstance(cloud.get("execution"), dict) else {}
    if execution.get("timeout_seconds") is not None:
        execution["timeout_seconds"] = _int(execution["timeout_seconds"], "execution.timeout_seconds", 0, 7 * 86400)
    cloud["execution"] = execution
    triggers = cloud.get("triggers") if isinstance(cloud.get("triggers"), dict) else {}
    cloud["triggers"] = triggers
    schedule = cloud.get("schedule") if isinstance(cloud.get("schedule"), dict) else {}
    cron = schedule.get("cron") or DEFAULT_CRON
    problem = check_cron(cron) if isinstance(cron, str) else f"{cron!r} is not a cron expression"
    if problem:
        raise DockyardError(f"schedule.cron: {problem}", hint="use 5 fields that match real dates, e.g. '0 2 * * *'")
    schedule.setdefault("cron", cron)
    cloud["schedule"] = schedule
    return name, env_name, cron if _truthy(triggers.get("schedule")) else None


def definition(cloud: dict[str, Any], env_name: str) -> dict[str, Any]:
    """The stored definition of an API job."""
    settings, execution = cloud.get("settings") or {}, cloud.get("execution") or {}
    timeout = execution.get("timeout_seconds") or 0
    job = {
        "environment": env_name,
        "commands": list(cloud["execute_steps"]),
        "generate_docs": _truthy(cloud.get("generate_docs")),
        "run_generate_sources": _truthy(cloud.get("run_generate_sources")),
        "settings": {"threads": settings.get("threads"), "target_name": settings.get("target_name")},
        "timeout_seconds": int(timeout) if timeout else 7 * 86400,
    }
    if cloud.get("description"):
        job["description"] = str(cloud["description"])
    return {"source": "api", "job": job, "cloud": cloud}


def job_model(record: JobRecord) -> Job:
    """The runnable :class:`Job` of an API job (its name may hold characters dockyard.yml forbids).
    A stored definition that is not one (edited in the store) is a :class:`DockyardError`, so
    lists skip that job instead of failing."""
    try:
        data = dict(record.definition.get("job") or {})
        data["settings"] = {k: v for k, v in (data.get("settings") or {}).items() if v is not None}
        model = Job.model_validate({**data, "name": "api-job", "environment": record.environment})
    except (ValueError, TypeError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise DockyardError(
            f"job {record.id} ({record.name!r}): its stored definition is not valid: {str(exc).splitlines()[0]}",
            hint="delete it from the store, or create it again through the API",
        ) from None
    return model.model_copy(update={"name": record.name})


def config_cloud_fields(job: Job, env_id: int | None) -> dict[str, Any]:
    """A dockyard.yml job in dbt Cloud's writable fields."""
    triggers = job.triggers
    job_type = job.job_type or (
        "ci"
        if triggers.github_webhook or triggers.git_provider_webhook
        else "merge"
        if triggers.on_merge and not job.schedule
        else "scheduled"
        if job.schedule
        else "other"
    )
    cron = job.schedule.cron if job.schedule else DEFAULT_CRON
    return {
        **copy.deepcopy(DEFAULTS),
        "name": job.name,
        "description": job.description or "",
        "environment_id": env_id,
        "dbt_version": job.dbt_version,
        "execute_steps": list(job.commands),
        "generate_docs": job.generate_docs,
        "run_generate_sources": job.run_generate_sources,
        "settings": {"threads": job.settings.threads, "target_name": job.settings.target_name or job.environment},
        "execution": {"timeout_seconds": job.timeout_seconds},
        "triggers": {
            "github_webhook": triggers.github_webhook,
            "git_provider_webhook": triggers.git_provider_webhook,
            "schedule": job.cron is not None,
            "on_merge": triggers.on_merge,
            "custom_branch_only": bool(triggers.custom_branch_only),
        },
        "schedule": {
            "cron": cron,
            "date": {"type": "custom_cron", "cron": cron},
            "time": {"type": "every_hour", "interval": 1},
        },
        "job_type": job_type,
        "deferring_environment_id": job.deferring_environment_id,
    }
