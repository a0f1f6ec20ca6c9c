"""``/environments``: each environment's target, schema, last deploy sha, latest successful run."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dockyard.app.dashboard import Dashboard
from dockyard.ui.auth import ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/environments")
async def environments_page(request: Request, viewer: ViewerDep):
    rows = await run_in_threadpool(Dashboard(request.app.state.dockyard).environments)
    return render(request, "environments.html", environments=rows)
