"""The model page ``/models/{environment}/{unique_id}``: run history, duration trend, rows,
its tests' latest results, compiled SQL, upstream and downstream (docs/ui.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.app.run_pages import RunPages
from dockyard.ui.auth import ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/models/{environment}/{unique_id}")
def model_page(request: Request, environment: str, unique_id: str, viewer: ViewerDep):
    app = request.app.state.dockyard
    app.refresh()
    return render(request, "models/model.html", model=RunPages(app).model(environment, unique_id))
