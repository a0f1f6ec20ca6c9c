"""Native API: figures over many runs for the UI (model durations over time, test results)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockyard.api import envelope
from dockyard.api.auth import READ
from dockyard.api.deps import AppDep
from dockyard.api.params import int_param, list_param
from dockyard.api.routes.common import ERRORS
from dockyard.views import iso

router = APIRouter(prefix="/api/v1/stats", tags=["native"], responses=ERRORS)
RESOURCE_TYPES = ("model", "seed", "snapshot", "test", "unit_test", "source")


@router.get("/model-durations", dependencies=[READ])
def model_durations(request: Request, app: AppDep):
    """Execution time of each model in the last ``runs`` (≤ 200, default 30) finished runs,
    oldest first, per model: ``job_id``, ``environment``, ``unique_id`` (repeatable) and
    ``resource_type`` (default ``model``) narrow it."""
    runs = int_param(request, "runs", 30, low=1, high=200, clamp=True)
    types = tuple(t for t in (list_param(request, "resource_type") or ["model"]) if t in RESOURCE_TYPES) or ("model",)
    series = app.runs.model_durations(
        job_id=int_param(request, "job_id"),
        environment=request.query_params.get("environment"),
        unique_ids=list_param(request, "unique_id"),
        runs_limit=int(runs or 30),
        resource_types=types,
    )
    for entry in series:
        entry["points"] = sorted(
            ({**p, "finished_at": iso(p["finished_at"])} for p in entry["points"]), key=lambda p: p["run_id"]
        )
    return envelope.ok(series)


@router.get("/test-results", dependencies=[READ])
def test_results(request: Request, app: AppDep):
    """Per finished run (newest first, last ``runs``, default 30): how many tests passed,
    failed, warned, errored or were skipped, and which failed."""
    runs = int_param(request, "runs", 30, low=1, high=200, clamp=True)
    rows = app.runs.test_results(
        job_id=int_param(request, "job_id"),
        environment=request.query_params.get("environment"),
        runs_limit=int(runs or 30),
    )
    return envelope.ok([{**r, "finished_at": iso(r["finished_at"])} for r in rows])
