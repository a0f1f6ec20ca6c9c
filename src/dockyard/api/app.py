"""``create_app``: the FastAPI application over one :class:`dockyard.app.App`.

Native API under ``/api/v1`` (OpenAPI at ``/api/openapi.json``), dbt Cloud's v2/v3 routes
under ``/api/v2/accounts/{account_id}`` and ``/api/v3/accounts/{account_id}``, ``GET /``.
Every error, whatever raised it, is ``{"status": {"code", "is_success": false,
"user_message", "developer_message"}, "data": null}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dockyard import __version__
from dockyard.api import envelope
from dockyard.api.auth import READ, Auth, RateLimited
from dockyard.api.middleware import (
    MAX_BODY,
    CatchAll,
    CheckQuery,
    LimitBody,
    NormalisePath,
    redact_tokens_in_logs,
)
from dockyard.errors import DockyardError, QueueFullError, StoreError

log = logging.getLogger("dockyard.api")

PUBLIC_PATHS = frozenset({"/api/v1/health"})  # the only routes without a token
# no token either: the git provider's signature is their authentication (dockyard.ci.webhooks)
SIGNED_PATHS = frozenset({"/api/webhooks/github", "/api/webhooks/gitlab"})


def create_app(
    app,
    *,
    require_auth: bool = False,
    request_rate: int | None = None,
    trigger_rate: int | None = None,
    max_body: int = MAX_BODY,
) -> FastAPI:
    """``require_auth``: demand a token even before any token exists (``dockyard serve`` on
    a non-loopback address); otherwise authentication starts with the first token."""
    from dockyard.api.routes import (
        catalog,
        cloud_account,
        cloud_jobs,
        cloud_runs,
        freshness,
        metrics,
        monitors,
        native_jobs,
        native_runs,
        native_stats,
        notifications,
        webhooks,
    )

    redact_tokens_in_logs()
    api = FastAPI(
        title="dockyard",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        description="dockyard's native API (/api/v1) and dbt Cloud's v2/v3 routes. "
        "Send 'Authorization: Token <token>' (or Bearer).",
    )
    api.router.redirect_slashes = False
    api.state.dockyard = app
    api.state.auth = Auth(app, required=require_auth, request_rate=request_rate, trigger_rate=trigger_rate)

    @api.exception_handler(DockyardError)
    async def dockyard_error(request: Request, exc: DockyardError):
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimited | QueueFullError):
            headers["Retry-After"] = str(exc.retry_after)
        elif exc.status == 401:
            headers["WWW-Authenticate"] = 'Token realm="dockyard"'
        elif exc.status == 503:
            headers["Retry-After"] = "5"
            if isinstance(exc, StoreError):  # the store's address is the operator's business
                log.warning("API %s %s: %s", request.method, request.url.path, exc.what)
                message = "The run store is unavailable; retry later"
                return envelope.error(503, message, message, headers=headers)
        return envelope.error(exc.status, exc.render(), exc.what, headers=headers)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404:
            message = f"Not found: {request.method} {request.url.path}"
        return envelope.error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return envelope.error(422, f"{where}: {first.get('msg', 'invalid value')}", str(errors)[:2000])

    @api.get("/api/v1/health", tags=["native"])
    def health():
        """Liveness of the store, the scheduler and the workers (no token needed); 503 with
        Retry-After while the store cannot be read, or cannot be written within a second (a
        process holding SQLite's write lock), so a load balancer can tell."""
        answer = app.health()
        if answer["status"] == "unavailable":
            return JSONResponse(answer, status_code=503, headers={"Retry-After": "5"})
        return answer

    @api.get("/", tags=["dbt Cloud"], dependencies=[READ])
    def root():
        """The site root (Airflow's connection test calls it)."""
        return envelope.ok({"name": "dockyard", "version": __version__, "account_id": app.config.server.account_id})

    @api.get("/api/openapi.json", tags=["native"], dependencies=[READ], include_in_schema=False)
    def openapi():
        return api.openapi()

    for module in (
        native_jobs,
        native_runs,
        native_stats,
        metrics,
        freshness,
        notifications,  # ALERTS: a run's alert deliveries
        monitors,  # MONITORS: data monitors
        catalog,  # INTEGRATIONS: the newest successful artifacts per environment
        cloud_jobs,
        cloud_runs,
        cloud_account,
        webhooks,
    ):
        api.include_router(module.router)

    api.add_middleware(CatchAll)
    api.add_middleware(CheckQuery)
    api.add_middleware(LimitBody, max_bytes=max_body)
    api.add_middleware(NormalisePath)
    return api


def api_routes(api: FastAPI):
    """Every route of the app as ``(path, methods, APIRoute)``, included routers flattened
    (FastAPI ≥ 0.16x keeps them nested), for the route-matrix tests and introspection."""
    from fastapi.routing import APIRoute

    for route in api.routes:
        if isinstance(route, APIRoute):
            yield route.path, set(route.methods or ()), route
        elif hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                original = ctx.original_route
                if isinstance(original, APIRoute):
                    yield ctx.path, set(original.methods or ()), original


def route_scope(route) -> str | None:
    """The token scope a route requires (``None``: public)."""
    for dep in route.dependant.dependencies:
        scope = getattr(dep.call, "scope", None)
        if scope:
            return scope
    return None
