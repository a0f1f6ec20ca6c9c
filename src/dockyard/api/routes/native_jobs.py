"""Native API: jobs, environments, and triggering a run (with overrides)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from dockyard.api import envelope
from dockyard.api.auth import READ, TRIGGER, Principal
from dockyard.api.deps import AppDep
from dockyard.api.params import read_body
from dockyard.api.routes.common import ERRORS, Id, body_schema
from dockyard.api.routes.native_runs import native_run
from dockyard.api.triggering import trigger
from dockyard.app.jobs import Jobs as Catalog
from dockyard.app.jobs import JobView
from dockyard.overrides import TriggerOptions
from dockyard.views import iso

router = APIRouter(prefix="/api/v1", tags=["native"], responses=ERRORS)


class NativeTrigger(TriggerOptions):
    """dbt Cloud's trigger fields, plus ``environment`` (run the job in another environment)."""

    environment: str | None = Field(None, max_length=200)


def job_json(cat: Catalog, view: JobView) -> dict[str, Any]:
    job = view.config
    fires = cat.app.next_fires(view.record, 3)
    return {
        "id": view.id,
        "name": view.name,
        "source": view.source,
        "environment": view.record.environment,
        "environment_id": cat.env_id(view.record.environment),
        "description": job.description,
        "commands": list(job.commands),
        "all_commands": job.all_commands,
        "cron": view.record.cron,
        "timezone": view.record.timezone,
        "next_fires": [iso(t) for t in fires],
        "timeout_seconds": job.timeout_seconds,
        "threads": job.settings.threads,
        "target_name": job.settings.target_name,
        "generate_docs": job.generate_docs,
        "run_generate_sources": job.run_generate_sources,
        "allow_overlap": job.allow_overlap,
        "priority": job.priority,
        "retries": job.retries.model_dump(),
        "created_at": iso(view.created_at),
        "updated_at": iso(view.updated_at),
    }


def env_json(row: dict) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "target": row["target"],
        "schema": row["schema"],
        "threads": row["threads"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


@router.get("/jobs", dependencies=[READ])
def list_jobs(app: AppDep):
    """Every job (dockyard.yml's and the API-created ones) with its stable id and next fires."""
    return envelope.ok([job_json(app.jobs, v) for v in app.jobs.list()])


@router.get("/jobs/{job_id}", dependencies=[READ])
def get_job(app: AppDep, job_id: Id):
    return envelope.ok(job_json(app.jobs, app.jobs.get(job_id)))


@router.post("/jobs/{job_id}/trigger", openapi_extra=body_schema(NativeTrigger))
async def trigger_job(request: Request, app: AppDep, job_id: Id, principal: Principal = TRIGGER):
    """Queue a run of the job now. The body takes dbt Cloud's trigger fields (cause,
    steps_override, threads_override, schema_override, target_name_override,
    timeout_seconds_override, generate_docs_override, git_sha, git_branch) and
    ``environment``; they change this run only. ``Idempotency-Key`` makes retries safe."""
    view = await run_in_threadpool(app.jobs.get, job_id)
    body = await read_body(request)
    environment = body.pop("environment", None)
    if environment is not None and not isinstance(environment, str):
        environment = str(environment)
    run = await trigger(request, app, principal, view, body, environment=environment)
    return envelope.ok(native_run(run, nodes=False))


@router.get("/environments", dependencies=[READ])
def list_environments(app: AppDep):
    return envelope.ok([env_json(row) for row in app.jobs.environments()])


@router.get("/environments/{environment_id}", dependencies=[READ])
def get_environment(app: AppDep, environment_id: Id):
    return envelope.ok(env_json(app.jobs.environment(environment_id)))
