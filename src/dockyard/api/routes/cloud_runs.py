"""dbt Cloud v2 runs: R2 detail (the polling route), R3/R4 artifacts, R5 cancel, R6 list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from dockyard import files
from dockyard.api import envelope
from dockyard.api.auth import READ, TRIGGER
from dockyard.api.cloud_objects import Catalog, environment_object, job_object
from dockyard.api.cloud_shapes import LOG_TAIL_BYTES, artifact_names, run_object
from dockyard.api.deps import AppDep, account_jobs
from dockyard.api.params import int_list, int_param, paging, time_range
from dockyard.api.routes.common import ERRORS, Id, base_url, includes
from dockyard.app import Run as StoredRun
from dockyard.domain import RunStatus
from dockyard.errors import DockyardError, NotFoundError

router = APIRouter(prefix="/api/v2/accounts/{account_id}", tags=["dbt Cloud"], responses=ERRORS)
CODES = {s.code: s.value for s in RunStatus}
LIST_LOG_TAIL = 4 * 1024  # bytes of each step's log in a list (100 runs × ~10 steps × 2 ≤ 10 MiB)


def _related(cat: Catalog, run: StoredRun, include: set[str], views: dict | None = None) -> dict:
    out: dict = {}
    if "job" in include and run.job_id is not None:
        view = (views if views is not None else cat.job_names()).get(run.job_id)
        out["job"] = job_object(cat, view) if view else None
    if "environment" in include:
        env_id = cat.env_id(run.environment)
        out["environment"] = environment_object(cat, cat.environment(env_id)) if env_id else None
    return out


def cloud_run(
    request: Request,
    cat: Catalog,
    run: StoredRun,
    include: set[str],
    views: dict | None = None,
    log_tail: int = LOG_TAIL_BYTES,
) -> dict:
    return run_object(
        cat, run, base_url(request), include=include, log_tail=log_tail, **_related(cat, run, include, views)
    )


@router.get("/runs", dependencies=[READ])
def list_runs(request: Request, app: AppDep, account_id: Id):
    """R6: runs, filtered (job_definition_id, status, status__in, environment_id, project_id,
    created_at__range, finished_at__range), ordered (order_by, default -id) and paginated
    (limit ≤ 100, offset)."""
    cat = account_jobs(app, account_id)
    limit, offset = paging(request)
    statuses = int_list(request, "status__in") or []
    if (single := int_param(request, "status")) is not None:
        statuses.append(single)
    unknown = [s for s in statuses if s not in CODES]
    if unknown:
        raise DockyardError(f"unknown run status {unknown[0]}", hint="use 1, 2, 3, 10, 20 or 30")
    search = dict(
        limit=limit,
        offset=offset,
        order_by=request.query_params.get("order_by") or "-id",
        job_ids=int_list(request, "job_definition_id", "job_id"),
        statuses=[CODES[s] for s in statuses] or None,
        created=time_range(request, "created_at__range"),
        finished=time_range(request, "finished_at__range"),
    )
    env_ids = int_list(request, "environment_id", "environment_id__in")
    if env_ids is not None:
        names = cat.env_names()
        search["environments"] = [names[i] for i in env_ids if i in names]
    projects = int_list(request, "project_id", "project_id__in")
    include = includes(request)
    search["with_steps"] = True  # status_message names the failed step
    if projects is not None and 1 not in projects:
        found, total = [], 0
    else:
        found, total = app.runs.search(**search)
    views = cat.job_names() if "job" in include else None  # one lookup for the page
    # a page of up to 100 runs stays within the 10 MiB log budget of a request
    data = [cloud_run(request, cat, run, include, views, log_tail=LIST_LOG_TAIL) for run in found]
    filters = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset", "include_related")}
    return envelope.listing(data, limit=limit, offset=offset, total=total, order_by=search["order_by"], filters=filters)


def _run(app: AppDep, run_id: Id) -> StoredRun:
    return app.runs.summary(run_id)


@router.get("/runs/{run_id}", dependencies=[READ])
def get_run(request: Request, app: AppDep, account_id: Id, run_id: Id):
    """R2: one run; ``include_related`` (any encoding) adds trigger, job, environment,
    run_steps (and full debug_logs)."""
    cat = account_jobs(app, account_id)
    include = includes(request)
    run = app.runs.summary(run_id, with_steps=True if "run_steps" in include else None)
    return envelope.ok(cloud_run(request, cat, run, include))


@router.post("/runs/{run_id}/cancel", dependencies=[TRIGGER])
def cancel_run(request: Request, app: AppDep, account_id: Id, run_id: Id):
    """R5: cancel (a queued run at once, a running one through its worker); a finished run
    is returned unchanged."""
    cat = account_jobs(app, account_id)
    _run(app, run_id)
    app.runs.cancel(run_id, final_ok=True)  # dbt Cloud answers a finished run unchanged
    return envelope.ok(cloud_run(request, cat, _run(app, run_id), {"trigger", "job"}))


def _step(request: Request, run: StoredRun) -> int | None:
    step = int_param(request, "step", None, low=1)
    if step is not None and step > len(run.steps) + 3:
        raise NotFoundError(f"run {run.id} has no step {step}", hint=f"steps are 1 to {len(run.steps) + 3}")
    return step


@router.get("/runs/{run_id}/artifacts", dependencies=[READ])
def list_artifacts(request: Request, app: AppDep, account_id: Id, run_id: Id):
    """R3: artifact paths relative to dbt's target folder, after step ``step`` (default: the
    last step)."""
    account_jobs(app, account_id)
    run = _run(app, run_id)
    return envelope.ok(list(artifact_names(run, _step(request, run))))


def serve_artifact(request: Request, cat: Catalog, run: StoredRun, path: str, step: int | None):
    files.clean(path)  # refuse traversal before anything else
    stored = artifact_names(run, step).get(path)
    if stored is None:
        raise NotFoundError(f"run {run.id} has no artifact {path!r}" + (f" at step {step}" if step else ""))
    chunks, size = files.stream(cat.app.runs.artifact_root(run), stored)
    media = "application/json" if path.endswith(".json") else "text/plain; charset=utf-8"
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={
            "Content-Length": str(size),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


@router.get("/runs/{run_id}/artifacts/{path:path}", dependencies=[READ], openapi_extra={"x-serves-files": True})
def get_artifact(request: Request, app: AppDep, account_id: Id, run_id: Id, path: str):
    """R4: the raw artifact (JSON as application/json, the rest as text)."""
    cat = account_jobs(app, account_id)
    run = _run(app, run_id)
    return serve_artifact(request, cat, run, path, _step(request, run))


@router.get("/jobs/{job_id}/artifacts/{path:path}", dependencies=[READ], openapi_extra={"x-serves-files": True})
def get_job_artifact(request: Request, app: AppDep, account_id: Id, job_id: Id, path: str):
    """R13: the artifact from the job's most recent successful run."""
    cat = account_jobs(app, account_id)
    cat.get(job_id)
    files.clean(path)
    run = app.runs.latest(job_id, status="success")
    if run is None:
        raise NotFoundError(f"job {job_id} has no successful run")
    return serve_artifact(request, cat, run, path, None)
