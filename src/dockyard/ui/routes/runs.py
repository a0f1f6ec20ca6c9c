"""The runs list ``/runs``, the run page ``/runs/{id}`` with its live part, its artifacts
(through the session, not a token), and the cancel and rerun buttons (docs/ui.md, "Runs
and models")."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, StreamingResponse

from dockyard import files
from dockyard.app.run_pages import RunPages
from dockyard.ui.auth import LiveViewerDep, ViewerDep, check_action
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)

STATUSES = ("queued", "starting", "running", "success", "error", "cancelled")
ARTIFACT_CSP = "sandbox; default-src 'none'"


def pages(request: Request) -> RunPages:
    app = request.app.state.dockyard
    app.refresh()
    return RunPages(app)


@router.get("/runs")
def runs_list(request: Request, viewer: ViewerDep):
    """The runs, newest first; every filter is a query parameter (deep links)."""
    rp = pages(request)
    page = rp.list(dict(request.query_params))
    options = {
        "status": [(s, s) for s in STATUSES],
        "job": [(str(j.id), j.name) for j in rp.app.jobs.records()],
        "trigger": [(t, t) for t in page.choices["triggers"]],
        "environment": [(e, e) for e in sorted({*page.choices["environments"], *rp.app.config.environments})],
    }
    return render(request, "runs/list.html", page=page, options=options)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int, viewer: ViewerDep):
    """The run; ``q``, ``status``, ``sort`` and ``page`` choose the node table's rows."""
    rp = pages(request)
    return render(request, "runs/run.html", p=rp.run(run_id, dict(request.query_params)))


@router.get("/runs/{run_id}/nodes")
def run_nodes(request: Request, run_id: int, viewer: ViewerDep):
    """The run page's node table alone (same parameters), for runpage.js to swap in."""
    run, table = pages(request).nodes(run_id, dict(request.query_params))
    return render(request, "runs/_nodes.html", r=run, t=table)


@router.get("/runs/{run_id}/live")
def run_live(request: Request, run_id: int, viewer: LiveViewerDep, log_offset: int = -1):
    """JSON for the run page's poll: status, steps, nodes done/total, new log bytes."""
    return pages(request).live(run_id, log_offset)


@router.get("/runs/{run_id}/artifacts/{path:path}")
def run_artifact(request: Request, run_id: int, path: str, viewer: ViewerDep):
    """One artifact of the run (``step-2/manifest.json``, ``ci.json``), traversal-safe."""
    app = pages(request).app
    app.runs.artifact_path(run_id, path)  # 404 outside the run's artifacts
    chunks, size = files.stream(app.runs.artifact_root(run_id), path)
    media = "application/json" if path.endswith(".json") else "text/plain; charset=utf-8"
    name = path.rsplit("/", 1)[-1].replace('"', "")
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={
            "Content-Length": str(size),
            "Content-Security-Policy": ARTIFACT_CSP,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@router.post("/runs/{run_id}/cancel")
async def run_cancel(request: Request, run_id: int, viewer: ViewerDep):
    await check_action(request, viewer, "trigger")
    app = pages(request).app
    await run_in_threadpool(app.runs.cancel, run_id)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/rerun")
async def run_rerun(request: Request, run_id: int, viewer: ViewerDep):
    """Queue the run again from its failure; the new run's page follows."""
    await check_action(request, viewer, "trigger")
    app = pages(request).app

    def queue() -> int:
        app.triggers.vet_rerun(viewer.scope, run_id, True)
        return int(app.runs.rerun(run_id, from_failure=True, queued=True).run_id)

    new_id = await run_in_threadpool(queue)
    return RedirectResponse(f"/runs/{new_id}", status_code=303)
