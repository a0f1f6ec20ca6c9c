"""``create_site``: the API of :func:`dockyard.api.app.create_app` plus the web UI's pages.

Every router of :data:`dockyard.ui.routes.PAGES`, the static files at ``/static/``, the
security headers on every response (a page's own stricter policy, set by its route, wins),
and ``GET /`` negotiated: a browser (``Accept`` with ``text/html``, no ``Authorization``)
gets the dashboard, anything else the API's JSON root unchanged (Airflow's connection test).
Errors of a page are an HTML page; errors of the API stay its JSON envelope.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match

from dockyard.api.app import create_app
from dockyard.errors import DockyardError
from dockyard.ui.auth import LoginRequired

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
API_PREFIXES = ("/api/", "/metrics")  # JSON answers, whatever the client accepts


def wants_html(headers) -> bool:
    """A browser's navigation: ``Accept`` names text/html and no ``Authorization`` is sent."""
    return "text/html" in headers.get("accept", "") and "authorization" not in headers


class BrowserRoute(APIRoute):
    """A route that only a browser's request matches (the others fall through to the API's)."""

    def matches(self, scope):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        if not wants_html(headers):
            return Match.NONE, {}
        return super().matches(scope)


class SecurityHeaders:
    """The UI's headers on every response, unless the route set its own (the hosted docs)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = dict(message, headers=[*message.get("headers", ()), *extra])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(API_PREFIXES) and (request.method != "GET" or wants_html(request.headers))


def create_site(app, **create_app_kwargs) -> FastAPI:
    """The API (``create_app(app, **create_app_kwargs)``) with the web UI's pages."""
    from dockyard.ui import templating
    from dockyard.ui.routes import PAGES
    from dockyard.ui.routes.dashboard import page as dashboard_page

    site = create_app(app, **create_app_kwargs)
    api_errors = dict(site.exception_handlers)

    site.router.add_api_route(
        "/", dashboard_page, methods=["GET"], route_class_override=BrowserRoute, include_in_schema=False
    )
    site.router.routes.insert(0, site.router.routes.pop())  # before the API's JSON root
    for name in PAGES:
        site.include_router(importlib.import_module(f"dockyard.ui.routes.{name}").router)
    site.mount("/static", StaticFiles(directory=STATIC), name="static")

    @site.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        return RedirectResponse(exc.location, status_code=303)

    def page_or_api(kind):
        async def handler(request: Request, exc: Exception):
            if not is_page(request):
                return await api_errors[kind](request, exc)
            if isinstance(exc, DockyardError):
                code, message = exc.status, exc.render()
            elif isinstance(exc, HTTPException):
                code = exc.status_code
                message = "This page does not exist" if code == 404 else str(exc.detail)
            else:
                code, message = 422, "; ".join(str(e.get("msg", "invalid value")) for e in exc.errors()[:3])
            page = templating.render(request, "error.html", status_code=code, code=code, message=message)
            if retry := getattr(exc, "retry_after", None):  # 429: when to try again
                page.headers["Retry-After"] = str(retry)
            return page

        return handler

    for kind in (DockyardError, HTTPException, RequestValidationError):
        site.add_exception_handler(kind, page_or_api(kind))
    site.add_middleware(SecurityHeaders)
    return site
