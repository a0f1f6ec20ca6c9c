"""Native API: stable URLs of each environment's newest successful dbt artifacts, for data
catalogs (Atlan, Select Star, Metaphor) and BI tools (docs/api.md, docs/integrations.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from dockyard import files
from dockyard.api.auth import READ
from dockyard.api.deps import AppDep
from dockyard.api.routes.common import ERRORS
from dockyard.app.catalog import Catalog
from dockyard.errors import NotFoundError, UnknownEnvironmentError

router = APIRouter(prefix="/api/v1/environments", tags=["native"], responses=ERRORS)


@router.get("/{name}/artifacts/{artifact}", dependencies=[READ], openapi_extra={"x-serves-files": True})
def latest_artifact(app: AppDep, name: str, artifact: str):
    """``manifest.json``, ``catalog.json``, ``run_results.json`` or ``sources.json`` of the
    environment's newest successful run that kept it (its last step's); 404 for an unknown
    environment or file, or when no successful run kept it. ``X-Dockyard-Run-Id`` names the run."""
    try:
        path, run = Catalog(app).artifact(name, artifact)
    except UnknownEnvironmentError as exc:
        raise NotFoundError(exc.what, hint=exc.hint) from None
    chunks, size = files.stream(path.parent, path.name)
    return StreamingResponse(
        chunks,
        media_type="application/json",
        headers={
            "Content-Length": str(size),
            "X-Content-Type-Options": "nosniff",
            "X-Dockyard-Run-Id": str(run.id),
            "Cache-Control": "no-cache",
        },
    )
