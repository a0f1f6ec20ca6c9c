"""Native API: run metrics (models, tests, jobs), the cost report, and Prometheus ``/metrics``.

``GET /metrics`` needs a read token like the rest of the API, unless
``server.metrics_public`` is true (a scraper on a trusted network without a token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from dockyard.api import envelope
from dockyard.api.auth import READ
from dockyard.api.deps import AppDep
from dockyard.api.params import int_param
from dockyard.api.routes.common import ERRORS
from dockyard.app.prometheus import exposition
from dockyard.views import iso

router = APIRouter(tags=["native"], responses=ERRORS)


def _metrics_reader(request: Request):
    """Read scope, or nobody when ``server.metrics_public`` (a Prometheus scraper)."""
    if request.app.state.dockyard.config.server.metrics_public:
        return None
    return request.app.state.auth.check(request, "read")


_metrics_reader.scope = "read"  # type: ignore[attr-defined]  # read by the route-matrix test


def plain(value: Any) -> Any:
    """``value`` with datetimes as ISO strings and sets as sorted lists (JSON-ready)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    return value


def _filters(request: Request, days: int) -> dict[str, Any]:
    return {
        "job": request.query_params.get("job") or None,
        "environment": request.query_params.get("environment") or None,
        "days": int(int_param(request, "days", days, low=1, high=365, clamp=True) or days),
    }


@router.get("/metrics", dependencies=[Depends(_metrics_reader)], include_in_schema=True)
def prometheus(app: AppDep):
    """Prometheus text exposition of dockyard's metrics (docs/metrics.md), read from the store now."""
    return Response(exposition(app), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/metrics/models", dependencies=[READ])
def models(request: Request, app: AppDep):
    """Every model executed in the last ``days`` (default 7, ≤ 365) days, slowest total first
    (``job``, ``environment`` narrow it; ``limit`` ≤ 1000, default 200)."""
    limit = int(int_param(request, "limit", 200, low=1, high=1000, clamp=True) or 200)
    return envelope.ok(plain(app.metrics.models(**_filters(request, 7), limit=limit)))


@router.get("/api/v1/metrics/models/{unique_id}", dependencies=[READ])
def model(request: Request, unique_id: str, app: AppDep):
    """One model's last ``limit`` (default 30, ≤ 1000) executions, newest first, and their figures."""
    limit = int(int_param(request, "limit", 30, low=1, high=1000, clamp=True) or 30)
    answer = app.metrics.model(unique_id, environment=request.query_params.get("environment") or None, limit=limit)
    return envelope.ok(plain(answer))


@router.get("/api/v1/metrics/tests", dependencies=[READ])
def tests(request: Request, app: AppDep):
    """Per test of the last ``days`` days: pass / fail / warn / error / skipped and the failure rate."""
    limit = int(int_param(request, "limit", 500, low=1, high=1000, clamp=True) or 500)
    return envelope.ok(plain(app.metrics.tests(**_filters(request, 7), limit=limit)))


@router.get("/api/v1/metrics/jobs", dependencies=[READ])
def jobs(request: Request, app: AppDep):
    """Per job and environment of the last ``days`` days: runs by status, durations, queue time."""
    f = _filters(request, 7)
    return envelope.ok(plain(app.metrics.jobs(environment=f["environment"], days=f["days"])))


@router.get("/api/v1/costs", dependencies=[READ])
def costs(request: Request, app: AppDep):
    """The cost report of the last ``days`` (default 30) days (``environment`` narrows it)."""
    f = _filters(request, 30)
    limit = int(int_param(request, "limit", 50, low=1, high=1000, clamp=True) or 50)
    return envelope.ok(plain(app.costs.report(f["environment"], f["days"], limit=limit)))
