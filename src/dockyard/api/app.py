"""``create_app``: the FastAPI application over one :class:`dockyard.app.App`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dockyard import __version__
from dockyard.errors import DockyardError


def create_app(app) -> FastAPI:
    api = FastAPI(title="dockyard", version=__version__, openapi_url="/api/openapi.json", docs_url=None,
                  redoc_url=None)
    api.state.dockyard = app

    @api.exception_handler(DockyardError)
    async def dockyard_error(request, exc: DockyardError):
        return JSONResponse(status_code=exc.status,
                            content={"status": {"code": exc.status, "is_success": False,
                                                "user_message": exc.render()}, "data": None})

    @api.get("/api/v1/health")
    def health() -> dict:
        """Liveness of the store, the scheduler and the workers (no token needed)."""
        return app.health()

    return api
