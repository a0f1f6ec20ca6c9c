"""The lineage page ``/lineage?env=E&select=S&exclude=X`` and its ``/lineage/graph.json``
(docs/ui.md, "Lineage"): an environment's newest manifest as a layered graph, filtered by
a dbt selector, coloured by each node's last status; drawn by ``static/lineage.js``."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dockyard.app.lineage_pages import LineagePages
from dockyard.lineage import SelectorError
from dockyard.ui.auth import LiveViewerDep, ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)
LEGEND = (
    ("success", "✓", "success / pass"),
    ("error", "✗", "error / fail"),
    ("warn", "!", "warn / stale"),
    ("skipped", "↷", "skipped"),
    ("never", "○", "no result yet"),
)
SHAPES = (
    ("model", "rectangle"),
    ("seed", "rounded"),
    ("snapshot", "rounded"),
    ("source", "pill"),
    ("exposure", "pill"),
)


def pages(request: Request) -> LineagePages:
    app = request.app.state.dockyard
    app.refresh()
    return LineagePages(app)


@router.get("/lineage")
def lineage_page(request: Request, viewer: ViewerDep, env: str = "", select: str = "", exclude: str = ""):
    lp = pages(request)
    env = env or lp.default_environment() or ""
    error, drawn = None, None
    if env:
        try:
            drawn = lp.drawing(lp.environment(env), select, exclude)
        except SelectorError as exc:
            error = exc.render()
    config = {
        "graph": "/lineage/graph.json?" + urlencode({"env": env, "select": select, "exclude": exclude}),
        "models": f"/models/{env}/",
    }
    return render(
        request,
        "lineage.html",
        environments=list(lp.app.config.environments),
        env=env,
        select=select,
        exclude=exclude,
        error=error,
        drawn=drawn,
        config=config,
        legend=LEGEND,
        shapes=SHAPES,
        status_code=400 if error else 200,
    )


@router.get("/lineage/graph.json", name="lineage_graph")
def lineage_graph(request: Request, viewer: LiveViewerDep, env: str = "", select: str = "", exclude: str = ""):
    """Nodes (id, name, type, x, y, layer, status), edges as index pairs, the manifest's run."""
    lp = pages(request)
    try:
        return lp.drawing(lp.environment(env or lp.default_environment() or ""), select, exclude)
    except SelectorError as exc:
        return JSONResponse({"error": exc.render()}, status_code=400)
