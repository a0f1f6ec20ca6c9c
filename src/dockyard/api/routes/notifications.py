"""Native API: a run's alert deliveries (the delivery log, docs/alerts.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.api import envelope
from dockyard.api.auth import READ
from dockyard.api.deps import AppDep
from dockyard.api.params import int_param
from dockyard.api.routes.common import ERRORS
from dockyard.api.routes.native_runs import Id

router = APIRouter(prefix="/api/v1", tags=["native"], responses=ERRORS)


@router.get("/runs/{run_id}/notifications", dependencies=[READ])
def run_notifications(request: Request, app: AppDep, run_id: Id):
    """The run's alert deliveries, newest first (``limit``, default 100): channel (its name,
    never its URL), type, event, status (``pending``, ``sent``, ``failed``, ``suppressed``),
    attempts, the last error and the channel's answer."""
    app.runs.get(run_id)  # an unknown run is a 404
    limit = int_param(request, "limit", 100, low=1, high=1000, clamp=True)
    return envelope.ok(app.alerts.deliveries(run_id, limit=int(limit or 100)))
