"""Native API: runs (list with filters and cursor/offset pagination, detail with steps and
nodes), logs (also followed live), artifacts, hosted docs, cancel, rerun."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from dockyard import files
from dockyard.api import envelope
from dockyard.api.auth import READ, TRIGGER, Principal
from dockyard.api.deps import AppDep
from dockyard.api.params import _int, int_param, list_param, paging, parse_time, read_body
from dockyard.api.routes.common import ERRORS, Id, body_schema
from dockyard.api.triggering import rerun
from dockyard.app import Run as StoredRun
from dockyard.domain import RunStatus
from dockyard.errors import DockyardError
from dockyard.views import iso, run_dict

router = APIRouter(prefix="/api/v1", tags=["native"], responses=ERRORS)
LOG_LIMIT = 10 * 1024 * 1024  # S7: at most 10 MiB of log per request
FOLLOW_POLL_S = 0.5
CODES = {str(s.code): s.value for s in RunStatus}


class RerunBody(BaseModel):
    from_failure: bool = True


def native_run(run: StoredRun, *, nodes: bool = True) -> dict[str, Any]:
    out = run_dict(run, nodes=nodes)
    out.update(
        {
            "status_humanized": run.status.value.capitalize(),
            "queued_at": iso(run.queued_at),
            "updated_at": iso(run.updated_at),
            "overrides": run.overrides,
            "git_sha": run.git_sha,
            "git_branch": run.git_branch,
            "coalesced": run.coalesced,
            "priority": run.priority,
            "cancel_requested_at": iso(run.cancel_requested_at),
            "worker_id": run.worker_id,
        }
    )
    return out


@router.get("/runs", dependencies=[READ])
def list_runs(request: Request, app: AppDep):
    """Runs, newest first by default. Filters: ``job_id``, ``status`` (names or dbt Cloud codes),
    ``environment``, ``trigger`` (each repeatable or comma-separated), ``created_after``,
    ``created_before``, ``finished_after``, ``finished_before``; ``order_by`` (``-id``...);
    pagination by ``limit`` (≤ 100) with ``offset``, or with ``cursor`` (``extra.next_cursor``)."""
    limit, offset = paging(request, 20)
    statuses = [CODES.get(s, s) for s in list_param(request, "status") or []] or None
    q = request.query_params
    search = dict(
        limit=limit,
        offset=offset,
        order_by=q.get("order_by") or "-id",
        with_steps=True,
        job_ids=_ints(list_param(request, "job_id")),
        statuses=statuses,
        environments=list_param(request, "environment"),
        triggers=list_param(request, "trigger"),
        created=_range(q.get("created_after"), q.get("created_before"), "created"),
        finished=_range(q.get("finished_after"), q.get("finished_before"), "finished"),
    )
    cursor = q.get("cursor")
    if cursor:
        if search["order_by"] not in ("-id", "id") or not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 10:
            raise DockyardError("cursor works with order_by=-id or id and a cursor from extra.next_cursor")
        search["offset"] = 0
        search["before_id" if search["order_by"] == "-id" else "after_id"] = int(cursor)
    found, total = app.runs.search(**search)
    next_cursor = str(found[-1].id) if len(found) == limit else None
    return envelope.listing(
        [native_run(r, nodes=False) for r in found],
        limit=limit,
        offset=search["offset"],
        total=total,
        order_by=search["order_by"],
        extra={"next_cursor": next_cursor},
    )


def _ints(values: list[str] | None) -> list[int] | None:
    if values is None:
        return None
    return [_int(v, "job_id") for v in values]


def _range(start: str | None, end: str | None, name: str):
    if not start and not end:
        return None
    return (parse_time(start, f"{name}_after") if start else None, parse_time(end, f"{name}_before") if end else None)


@router.get("/runs/{run_id}", dependencies=[READ])
def get_run(app: AppDep, run_id: Id):
    """One run with its steps, every node's result and its artifacts."""
    return envelope.ok(native_run(app.runs.get(run_id)))


async def _follow(request: Request, app: AppDep, run_id: Id, step: int | None):
    reader = await run_in_threadpool(app.runs.follow, run_id, step, limit=LOG_LIMIT)
    while True:
        data = await run_in_threadpool(reader.read)
        if data:
            yield data
        if reader.done or await request.is_disconnected():
            return
        await asyncio.sleep(FOLLOW_POLL_S)


@router.get("/runs/{run_id}/logs", dependencies=[READ], openapi_extra={"x-serves-files": True})
async def get_logs(request: Request, app: AppDep, run_id: Id):
    """dbt's log of every step (``step=N``: one), secrets scrubbed, at most 10 MiB.
    ``follow=true`` streams it as it is written, until the run is final."""
    step = int_param(request, "step", None, low=1)
    if (request.query_params.get("follow") or "").lower() in ("1", "true", "yes"):
        await run_in_threadpool(app.runs.follow, run_id, step)  # 404 now, not inside the stream
        return StreamingResponse(
            _follow(request, app, run_id, step),
            media_type="text/plain; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )
    text = await run_in_threadpool(lambda: app.runs.logs(run_id, step, budget=LOG_LIMIT))
    return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})


@router.get("/runs/{run_id}/artifacts", dependencies=[READ])
def list_artifacts(app: AppDep, run_id: Id):
    """The run's artifacts per step, with the path to download each."""
    return envelope.ok(
        [
            {
                "step_index": a.step_index,
                "name": a.name,
                "path": a.path,
                "size": a.size,
                "sha256": a.sha256,
                "url": f"/api/v1/runs/{run_id}/artifacts/{a.path}",
            }
            for a in app.runs.artifacts(run_id)
        ]
    )


def _file(root, path: str, media: str | None = None, csp: str = "sandbox; default-src 'none'"):
    chunks, size = files.stream(root, path)
    if media is None:
        media = (
            "application/json"
            if path.endswith(".json")
            else "text/html; charset=utf-8"
            if path.endswith(".html")
            else "text/plain; charset=utf-8"
        )
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={"Content-Length": str(size), "X-Content-Type-Options": "nosniff", "Content-Security-Policy": csp},
    )


@router.get("/runs/{run_id}/artifacts/{path:path}", dependencies=[READ], openapi_extra={"x-serves-files": True})
def get_artifact(app: AppDep, run_id: Id, path: str):
    """One artifact file, by its ``path`` from the list (``step-2/manifest.json``)."""
    media = "application/json" if path.endswith(".json") else "text/plain; charset=utf-8"
    return _file(app.runs.artifact_root(run_id), path, media)


@router.get("/runs/{run_id}/docs/{path:path}", dependencies=[READ], openapi_extra={"x-serves-files": True})
def get_docs(app: AppDep, run_id: Id, path: str):
    """The dbt docs site the run generated (``index.html``, ``manifest.json``, ``catalog.json``),
    served sandboxed (scripts run, but cannot reach this origin's cookies or API)."""
    return _file(app.runs.docs_root(run_id), path, csp="sandbox allow-scripts")


@router.post("/runs/{run_id}/cancel")
def cancel_run(app: AppDep, run_id: Id, principal: Principal = TRIGGER):
    """Cancel: a queued run at once (``cancelled``), a running one through its worker
    (``requested``: it then ends ``cancelled``, even if its last step was just finishing); 409
    when it had already ended (the message names its status)."""
    outcome = app.runs.cancel(run_id)
    return envelope.ok({"outcome": outcome, "run": native_run(app.runs.summary(run_id), nodes=False)})


@router.post("/runs/{run_id}/rerun", openapi_extra=body_schema(RerunBody))
async def rerun_run(request: Request, app: AppDep, run_id: Id, principal: Principal = TRIGGER):
    """Queue a failed or cancelled run again: from the failure (the failed step's unfinished
    nodes, then the later steps; the default) or, with ``from_failure: false``, all of it."""
    body = await read_body(request)
    value = body.get("from_failure", True)
    from_failure = value if isinstance(value, bool) else str(value).lower() not in ("false", "0", "no")
    run = await rerun(request, app, principal, run_id, from_failure=from_failure)
    return envelope.ok(native_run(run, nodes=False))
