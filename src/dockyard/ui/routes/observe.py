"""The freshness page ``/freshness`` (latest check of every source per environment, stale
first) and the monitors page ``/monitors`` (every monitor with its state, failing first)
(docs/ui.md, "Freshness and monitors")."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.app.lineage_pages import LineagePages
from dockyard.ui.auth import ViewerDep
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


def pages(request: Request) -> LineagePages:
    app = request.app.state.dockyard
    app.refresh()
    return LineagePages(app)


@router.get("/freshness")
def freshness_page(request: Request, viewer: ViewerDep, environment: str = ""):
    lp = pages(request)
    if environment:
        lp.environment(environment)
    rows = lp.freshness(environment or None)
    stale = sum(1 for r in rows if r["status"] != "pass")
    return render(
        request,
        "freshness.html",
        rows=rows,
        stale=stale,
        environment=environment,
        environments=list(lp.app.config.environments),
    )


@router.get("/monitors")
def monitors_page(request: Request, viewer: ViewerDep):
    lp = pages(request)
    rows = lp.monitors()
    failing = sum(1 for m in rows if m["status"] in ("alert", "error") or m["problem"])
    return render(request, "monitors.html", rows=rows, failing=failing)
