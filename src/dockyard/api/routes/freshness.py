"""Native API: source freshness, from every ``dbt source freshness`` step (docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.api import envelope
from dockyard.api.auth import READ
from dockyard.api.deps import AppDep
from dockyard.api.params import MAX_LIMIT, int_param
from dockyard.api.routes.common import ERRORS
from dockyard.errors import NotFoundError

router = APIRouter(prefix="/api/v1/freshness", tags=["native"], responses=ERRORS)


@router.get("", dependencies=[READ])
def latest(request: Request, app: AppDep):
    """The last check of every source per environment (``environment`` narrows it): status,
    max loaded at, age at the check and now, thresholds, when and by which run."""
    rows = app.freshness.latest(request.query_params.get("environment") or None)
    stale = sum(1 for r in rows if r["status"] != "pass")
    return envelope.ok(rows, extra={"pagination": {"count": len(rows), "total_count": len(rows)}, "stale": stale})


@router.get("/{unique_id}", dependencies=[READ])
def history(unique_id: str, request: Request, app: AppDep):
    """One source's checks, newest first (its unique id, ``<source>.<table>`` or table name):
    ``environment``, ``limit`` (1..100, default 100) and ``before_id`` (the next page: the
    last row's ``id``)."""
    limit = int(int_param(request, "limit", MAX_LIMIT, low=1, high=MAX_LIMIT, clamp=True) or MAX_LIMIT)
    before_id = int_param(request, "before_id", low=1)
    rows = app.freshness.history(
        unique_id, request.query_params.get("environment") or None, limit=limit, before_id=before_id
    )
    if not rows and before_id is None:
        raise NotFoundError(
            f"no freshness check of source {unique_id!r} is recorded",
            hint="GET /api/v1/freshness lists the sources checked",
        )
    return envelope.ok(rows, extra={"pagination": {"count": len(rows)}, "limit": limit})
