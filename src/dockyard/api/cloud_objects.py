"""dbt Cloud's job, environment, project and account objects, from dockyard's records.

``cat`` is the App's catalog (``app.jobs``: :class:`dockyard.app.jobs.Jobs`)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from dockyard import clock
from dockyard.app.jobs import Jobs as Catalog
from dockyard.app.jobs import JobView
from dockyard.cloud_jobs import DEFAULTS, config_cloud_fields
from dockyard.overrides import dbt_version
from dockyard.schedule import safe_next_fires

PROJECT_ID = 1  # one dbt project per server


def ts(value: datetime | None) -> str | None:
    """dbt Cloud's v2 timestamps: ``2021-11-26 16:48:41.431645+00:00``."""
    return str(value) if value else None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_cloud_fields(cat: Catalog, view: JobView) -> dict[str, Any]:
    """The job's writable fields: verbatim for an API job, derived for a dockyard.yml job."""
    if view.source == "api":
        cloud = view.record.definition.get("cloud")
        if isinstance(cloud, dict):
            return dict(cloud)
        return {**copy.deepcopy(DEFAULTS), "name": view.name}  # edited in the store into something else
    fields = config_cloud_fields(view.config, cat.env_id(view.config.environment))
    env = cat.app.config.environments.get(view.config.environment)
    settings = fields["settings"]
    settings["threads"] = settings["threads"] or (env.threads if env else None) or 4
    if env and not view.config.settings.target_name:
        settings["target_name"] = env.target
    return fields


def job_object(cat: Catalog, view: JobView, *, state: int = 1) -> dict[str, Any]:
    fields = job_cloud_fields(cat, view)
    fires = safe_next_fires(view.record.cron, view.record.timezone, clock.now(), 1, job=view.id)
    next_run = fires[0] if fires else None
    version = fields.get("dbt_version")
    return {
        "id": view.id,
        "account_id": cat.account_id,
        "project_id": PROJECT_ID,
        **fields,
        "environment_id": fields.get("environment_id") or cat.env_id(view.record.environment),
        "raw_dbt_version": version or dbt_version(),
        "generate_sources": bool(fields.get("run_generate_sources")),
        "state": state,
        "deactivated": False,
        "is_deferrable": bool(fields.get("deferring_environment_id") or fields.get("deferring_job_definition_id")),
        "run_failure_count": 0,
        "is_system": False,
        "created_at": iso(view.created_at),
        "updated_at": iso(view.updated_at),
        "cron_humanized": _cron_humanized(view.record.cron, view.record.timezone),
        "next_run": ts(next_run),
        "next_run_humanized": _until(next_run),
        "account": None,
        "project": None,
        "environment": None,
        "most_recent_run": None,
        "most_recent_completed_run": None,
    }


def environment_object(cat: Catalog, row: dict) -> dict[str, Any]:
    name = row["name"]
    lowered = name.lower()
    deployment = (
        "production" if lowered in ("prod", "production") else "staging" if lowered in ("staging", "stage") else None
    )
    return {
        "id": row["id"],
        "account_id": cat.account_id,
        "project_id": PROJECT_ID,
        "name": name,
        "type": "deployment",
        "deployment_type": deployment,
        "dbt_version": dbt_version(),
        "raw_dbt_version": dbt_version(),
        "custom_branch": None,
        "use_custom_branch": False,
        "supports_docs": True,
        "state": 1,
        "credentials_id": None,
        "connection_id": None,
        "repository_id": None,
        "dbt_project_subdirectory": None,
        "target": row["target"],
        "threads": row["threads"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def project_object(cat: Catalog) -> dict[str, Any]:
    app = cat.app
    first_env = next(iter(app.config.environments), None)
    adapter = cat.adapter(first_env) if first_env else "unknown"
    return {
        "id": PROJECT_ID,
        "account_id": cat.account_id,
        "name": app.project.name,
        "description": "",
        "state": 1,
        "dbt_project_subdirectory": None,
        "connection": {"id": None, "type": adapter, "adapter_version": None, "name": adapter},
        "connection_id": None,
        "repository": None,
        "repository_id": None,
        "created_at": None,
        "updated_at": None,
    }


def account_object(cat: Catalog) -> dict[str, Any]:
    return {
        "id": cat.account_id,
        "name": "dockyard",
        "state": 1,
        "plan": "self-hosted",
        "locked": False,
        "created_at": None,
        "updated_at": None,
    }


def _cron_humanized(cron: str | None, timezone: str) -> str:
    if not cron:
        return "Not scheduled"
    return f"{cron} ({timezone})"


def _until(when: datetime | None) -> str | None:
    if when is None:
        return None
    seconds = int((when - clock.now()).total_seconds())
    return f"in {humanize(max(seconds, 0))}"


def humanize(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
