"""dbt Cloud v2 jobs: R1 trigger, R7 detail, R8 list, R9 create, R10 update, R11 delete,
R12 rerun (from failure when the job's last run failed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from dockyard.api import envelope
from dockyard.api.auth import ADMIN, READ, TRIGGER, Principal
from dockyard.api.cloud_objects import job_object
from dockyard.api.deps import AppDep, account_jobs
from dockyard.api.params import int_list, paging, read_body
from dockyard.api.routes.cloud_runs import cloud_run
from dockyard.api.routes.common import ERRORS, Id, body_schema
from dockyard.api.triggering import rerun, trigger
from dockyard.overrides import TriggerOptions

router = APIRouter(prefix="/api/v2/accounts/{account_id}", tags=["dbt Cloud"], responses=ERRORS)
JOB_ORDER = {
    "id": lambda v: v.id,
    "name": lambda v: v.name.lower(),
    "created_at": lambda v: v.created_at,
    "updated_at": lambda v: v.updated_at,
}


class JobBody(BaseModel):
    """A dbt Cloud job definition (every field optional; unknown and read-only ones ignored)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    environment_id: Id | None = None
    execute_steps: list[str] | None = None
    description: str | None = None


def _principal(request: Request) -> Principal:
    return request.state.principal


@router.get("/jobs", dependencies=[READ])
def list_jobs(request: Request, app: AppDep, account_id: Id):
    """R8: jobs (deleted ones are not listed), filtered by project_id(__in), environment_id,
    name__icontains; ordered by order_by; paginated (limit ≤ 100, offset)."""
    cat = account_jobs(app, account_id)
    limit, offset = paging(request)
    views = cat.list()
    projects = int_list(request, "project_id", "project_id__in")
    if projects is not None and 1 not in projects:
        views = []
    env_ids = int_list(request, "environment_id", "environment_id__in")
    if env_ids is not None:
        views = [v for v in views if cat.env_id(v.record.environment) in env_ids]
    if needle := (request.query_params.get("name__icontains") or "").lower():
        views = [v for v in views if needle in v.name.lower()]
    order = request.query_params.get("order_by") or "id"
    key = JOB_ORDER.get(order.lstrip("-"), JOB_ORDER["id"])
    views = sorted(views, key=key, reverse=order.startswith("-"))
    page = views[offset : offset + limit]
    filters = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
    return envelope.listing(
        [job_object(cat, v) for v in page],
        limit=limit,
        offset=offset,
        total=len(views),
        order_by=order,
        filters=filters,
    )


@router.get("/jobs/{job_id}", dependencies=[READ])
def get_job(app: AppDep, account_id: Id, job_id: Id):
    """R7: one job (always exactly 200 when it exists)."""
    cat = account_jobs(app, account_id)
    return envelope.ok(job_object(cat, cat.get(job_id)))


@router.post("/jobs", dependencies=[ADMIN], status_code=201, openapi_extra=body_schema(JobBody, form=False))
async def create_job(request: Request, app: AppDep, account_id: Id):
    """R9: create a job (201). Read-only fields (id, account_id, project_id, state, ...) are
    ignored; missing fields get dbt Cloud's defaults."""
    cat = account_jobs(app, account_id)
    body = await read_body(request)
    view = await run_in_threadpool(lambda: cat.save(body, scope=_principal(request).scope))
    return envelope.ok(await run_in_threadpool(job_object, cat, view), code=201)


@router.post("/jobs/{job_id}", dependencies=[ADMIN], openapi_extra=body_schema(JobBody, form=False))
async def update_job(request: Request, app: AppDep, account_id: Id, job_id: Id):
    """R10: update a job created through the API (fields given replace the stored ones)."""
    cat = account_jobs(app, account_id)
    await run_in_threadpool(cat.get, job_id)
    body = await read_body(request)
    view = await run_in_threadpool(lambda: cat.save(body, job_id=job_id, scope=_principal(request).scope))
    return envelope.ok(await run_in_threadpool(job_object, cat, view))


@router.delete("/jobs/{job_id}", dependencies=[ADMIN])
def delete_job(app: AppDep, account_id: Id, job_id: Id):
    """R11: delete a job created through the API; answers the job with ``state: 2``."""
    cat = account_jobs(app, account_id)
    view = cat.delete(job_id)
    return envelope.ok(job_object(cat, view, state=2))


@router.post("/jobs/{job_id}/run", openapi_extra=body_schema(TriggerOptions))
async def trigger_run(request: Request, app: AppDep, account_id: Id, job_id: Id, principal: Principal = TRIGGER):
    """R1: queue a run; the trigger fields (cause, git_sha, git_branch, schema_override,
    threads_override, target_name_override, steps_override, timeout_seconds_override,
    generate_docs_override) change this run only. ``Idempotency-Key`` makes retries safe."""
    cat = account_jobs(app, account_id)
    view = await run_in_threadpool(cat.get, job_id)
    body = await read_body(request)
    run = await trigger(request, app, principal, view, body)
    return envelope.ok(await run_in_threadpool(cloud_run, request, cat, run, {"trigger", "job"}))


@router.post("/jobs/{job_id}/rerun")
async def rerun_job(request: Request, app: AppDep, account_id: Id, job_id: Id, principal: Principal = TRIGGER):
    """R12: if the job's latest run failed, queue it again from the point of failure;
    otherwise trigger a new run."""
    cat = account_jobs(app, account_id)
    view = await run_in_threadpool(cat.get, job_id)
    latest = await run_in_threadpool(app.runs.latest, job_id)
    if latest is not None and latest.status.code == 20:
        run = await rerun(request, app, principal, latest.id)
    else:
        run = await trigger(request, app, principal, view, {})
    return envelope.ok(await run_in_threadpool(cloud_run, request, cat, run, {"trigger", "job"}))
