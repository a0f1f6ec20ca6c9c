"""``/workers``: the ``dockyard status`` view (processes and heartbeats, queue, next fires,
config state, repository) from ``app.state``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dockyard.ui.auth import ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/workers")
async def workers_page(request: Request, viewer: ViewerDep):
    state = await run_in_threadpool(request.app.state.dockyard.state.summary)
    return render(request, "workers.html", state=state)
