"""The dashboard (``GET /`` for a browser) and its live part ``/live/dashboard`` (JSON)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.ui.auth import LiveViewerDep, ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


def page(request: Request, viewer: ViewerDep):
    """``GET /`` from a browser (registered by create_site ahead of the API's JSON root)."""
    app = request.app.state.dockyard
    return render(request, "dashboard.html", jobs=app.jobs())


@router.get("/live/dashboard")
def live(request: Request, viewer: LiveViewerDep):
    return {"running": []}
