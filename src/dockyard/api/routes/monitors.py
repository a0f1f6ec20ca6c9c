"""Native API: data monitors (docs/monitors.md): the list with their status, a monitor's
history, and a check on request (run in the background by the scheduler's RunMonitors duty)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.api import envelope
from dockyard.api.auth import READ, TRIGGER
from dockyard.api.deps import AppDep
from dockyard.api.params import int_param
from dockyard.api.routes.common import ERRORS

router = APIRouter(prefix="/api/v1/monitors", tags=["native"], responses=ERRORS)


@router.get("", dependencies=[READ])
def list_monitors(app: AppDep):
    """Every monitor of dockyard.yml: type, table or model, environment, last status and value."""
    return envelope.ok(app.monitors.list())


@router.get("/{name}", dependencies=[READ])
def monitor_history(name: str, request: Request, app: AppDep):
    """The monitor's measurements, newest first (``limit`` ≤ 1000, default 100; ``environment``)."""
    limit = int_param(request, "limit", 100, low=1, high=1000, clamp=True)
    rows = app.monitors.history(name, int(limit or 100), request.query_params.get("environment"))
    return envelope.ok({"name": name, "measurements": rows})


@router.post("/{name}/check", dependencies=[TRIGGER])
def check_monitor(name: str, request: Request, app: AppDep):
    """Queue a check of the monitor (``environment``: in that one); 202: the scheduler runs it."""
    app.monitors.request([name], request.query_params.get("environment"))
    return envelope.ok({"name": name, "queued": True}, code=202)
