"""The dashboard (``GET /`` for a browser) and its live part ``/live/dashboard`` (JSON)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dockyard.app.dashboard import Dashboard
from dockyard.ui.auth import LiveViewerDep, ViewerDep
from dockyard.ui.charts import sparkline
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


def _context(app) -> dict:
    board = Dashboard(app)
    jobs = board.jobs()
    return {
        "jobs": jobs,
        "sparks": {row.id: sparkline(row.durations) for row in jobs},
        "running": board.running(),
        "queue": board.queue(),
        "stale": board.stale_sources(),
        "failing": board.failing_monitors(),
    }


async def page(request: Request, viewer: ViewerDep):
    """``GET /`` from a browser (registered by create_site ahead of the API's JSON root)."""
    context = await run_in_threadpool(_context, request.app.state.dockyard)
    return render(request, "dashboard.html", **context)


@router.get("/live/dashboard")
async def live(request: Request, viewer: LiveViewerDep):
    """Runs in progress with their models done of total, and the queue's length."""
    return await run_in_threadpool(Dashboard(request.app.state.dockyard).live)
