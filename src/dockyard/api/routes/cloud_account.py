"""dbt Cloud account, project and environment lookups: R14–R22 (v2 and v3)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.api import envelope
from dockyard.api.auth import READ
from dockyard.api.cloud_objects import PROJECT_ID, account_object, environment_object, project_object
from dockyard.api.deps import AppDep, account_jobs
from dockyard.api.params import int_list, paging
from dockyard.api.routes.common import ERRORS, Id
from dockyard.errors import NotFoundError

v2 = APIRouter(prefix="/api/v2/accounts/{account_id}", tags=["dbt Cloud"], responses=ERRORS)
v3 = APIRouter(prefix="/api/v3/accounts/{account_id}", tags=["dbt Cloud"], responses=ERRORS)


def _project(project_id: Id) -> None:
    if project_id != PROJECT_ID:
        raise NotFoundError(f"Project {project_id} not found", hint=f"this server has project {PROJECT_ID}")


def _page(request: Request, items: list[dict]):
    limit, offset = paging(request)
    if needle := (request.query_params.get("name__icontains") or "").lower():
        items = [i for i in items if needle in str(i.get("name", "")).lower()]
    filters = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
    return envelope.listing(
        items[offset : offset + limit],
        limit=limit,
        offset=offset,
        total=len(items),
        order_by=request.query_params.get("order_by") or "id",
        filters=filters,
    )


@v2.get("", dependencies=[READ])
def get_account(request: Request, app: AppDep, account_id: Id):
    """R14: the account (its name)."""
    return envelope.ok(account_object(account_jobs(app, account_id)))


@v2.get("/projects/{project_id}", dependencies=[READ])
def get_project(request: Request, app: AppDep, account_id: Id, project_id: Id):
    """R15: the project (one per server: the dbt project of dockyard.yml)."""
    cat = account_jobs(app, account_id)
    _project(project_id)
    return envelope.ok(project_object(cat))


@v2.get("/environments/{environment_id}", dependencies=[READ])
def get_environment(request: Request, app: AppDep, account_id: Id, environment_id: Id):
    """R16: one environment."""
    cat = account_jobs(app, account_id)
    return envelope.ok(environment_object(cat, cat.environment(environment_id)))


@v3.get("/projects", dependencies=[READ])
def list_projects(request: Request, app: AppDep, account_id: Id):
    """R17: projects (one), filtered by name__icontains, paginated."""
    return _page(request, [project_object(account_jobs(app, account_id))])


@v3.get("/projects/{project_id}", dependencies=[READ])
def get_project_v3(request: Request, app: AppDep, account_id: Id, project_id: Id):
    """R18: the project (as R15)."""
    return get_project(request, app, account_id, project_id)


@v3.get("/projects/{project_id}/environments", dependencies=[READ])
def list_project_environments(request: Request, app: AppDep, account_id: Id, project_id: Id):
    """R19: the project's environments, filtered by name__icontains, paginated."""
    cat = account_jobs(app, account_id)
    _project(project_id)
    return _page(request, [environment_object(cat, row) for row in cat.environments()])


@v3.get("/projects/{project_id}/environments/{environment_id}", dependencies=[READ])
def get_project_environment(request: Request, app: AppDep, account_id: Id, project_id: Id, environment_id: Id):
    """R20: one environment of the project."""
    cat = account_jobs(app, account_id)
    _project(project_id)
    return envelope.ok(environment_object(cat, cat.environment(environment_id)))


@v3.get("/environments", dependencies=[READ])
def list_environments(request: Request, app: AppDep, account_id: Id):
    """R21: environments (``project_id`` filter)."""
    cat = account_jobs(app, account_id)
    projects = int_list(request, "project_id", "project_id__in")
    rows = [] if projects is not None and PROJECT_ID not in projects else cat.environments()
    return _page(request, [environment_object(cat, row) for row in rows])


@v3.get("/projects/{project_id}/environment-variables/job", dependencies=[READ])
def job_environment_variables(request: Request, app: AppDep, account_id: Id, project_id: Id):
    """R22: job environment-variable overrides (dockyard keeps them in dockyard.yml: none here)."""
    account_jobs(app, account_id)
    _project(project_id)
    return envelope.ok({})


router = APIRouter()
router.include_router(v2)
router.include_router(v3)
