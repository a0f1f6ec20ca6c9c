"""``/jobs`` (every job), ``/jobs/{job_id}`` (its runs, trend, definition, trigger form) and
``POST /jobs/{job_id}/trigger`` (the native API's trigger overrides, from a form)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from dockyard.api.auth import RateLimited
from dockyard.app.dashboard import Dashboard
from dockyard.errors import DockyardError
from dockyard.ui.auth import ViewerDep, check_action
from dockyard.ui.charts import sparkline, trend
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)

RECENT_RUNS = 20
TEXT_FIELDS = ("cause", "git_sha", "git_branch", "schema_override", "target_name_override")
INT_FIELDS = ("threads_override", "github_pull_request_id")
RUN_FILTERS = [  # the job page's filter form: it opens /runs?job=<id>&...
    ("status", "Status", "select", [(s, s) for s in ("success", "error", "cancelled", "running", "queued")]),
    ("trigger", "Trigger", "select", [(t, t) for t in ("schedule", "manual", "api", "job_completion", "retry", "ci")]),
    ("branch", "Branch", "text", None),
    ("pr", "Pull request", "text", None),
    ("since", "Since", "date", None),
    ("until", "Until", "date", None),
]


@router.get("/jobs")
async def jobs_page(request: Request, viewer: ViewerDep):
    rows = await run_in_threadpool(Dashboard(request.app.state.dockyard).jobs)
    return render(request, "jobs/list.html", jobs=rows, sparks={r.id: sparkline(r.durations) for r in rows})


def _job_context(app, job_id: int) -> dict:
    data = Dashboard(app).job(job_id, recent=RECENT_RUNS)
    return {**data, "chart": trend(data["trend"])}


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: int, viewer: ViewerDep):
    context = await run_in_threadpool(_job_context, request.app.state.dockyard, job_id)
    return render(request, "jobs/job.html", filters=RUN_FILTERS, **context)


def trigger_body(form: dict[str, str]) -> dict:
    """The trigger form as the native API's body (empty fields left out)."""
    body: dict = {}
    for name in TEXT_FIELDS:
        if value := form.get(name, "").strip():
            body[name] = value
    for name in INT_FIELDS:
        if value := form.get(name, "").strip():
            try:
                body[name] = int(value)
            except ValueError:
                raise DockyardError(f"{name} must be a whole number, not {value[:40]!r}") from None
    steps = [line.strip() for line in form.get("steps_override", "").splitlines() if line.strip()]
    if steps:
        body["steps_override"] = steps
    return body


@router.post("/jobs/{job_id}/trigger")
async def trigger(request: Request, job_id: int, viewer: ViewerDep):
    """Queue a run with the form's overrides (trigger scope, CSRF), then open its page."""
    form = await check_action(request, viewer, "trigger")
    app = request.app.state.dockyard
    wait = request.app.state.auth.triggers.take(f"ui:{viewer.kind}:{viewer.name}")
    if wait:
        raise RateLimited("Too many runs triggered", wait)
    body = trigger_body(form)
    body.setdefault("cause", f"Triggered from the web UI by {viewer.name}")
    run_id = await run_in_threadpool(app.triggers.trigger, job_id, body, scope=viewer.scope, trigger="manual")
    return RedirectResponse(f"/runs/{run_id}", status_code=303)
