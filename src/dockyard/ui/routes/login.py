"""``/login`` (an API token, or a user's name and password) and ``POST /logout``.

Attempts are throttled per client address and per user name (token buckets of
:class:`dockyard.api.auth.Buckets`): a 429 page with ``Retry-After``, whatever the password.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from dockyard import tokens as tok
from dockyard.api.auth import Buckets
from dockyard.ui.auth import SESSION_COOKIE, Viewer, check_action, is_https, login_needed, resolve
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)

PER_ADDRESS = (30, 10)  # attempts a minute, burst
PER_NAME = (10, 5)
_VISITOR = Viewer("visitor", "read", "visitor")  # posts the login form before any login


def local_path(target: str | None) -> str:
    """``next`` only when it is a path of this site (``/x``, never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/"
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    return target


def _buckets(request: Request) -> tuple[Buckets, Buckets]:
    state = request.app.state
    if not hasattr(state, "login_buckets"):
        state.login_buckets = (Buckets(*PER_ADDRESS), Buckets(*PER_NAME))
    return state.login_buckets


def _page(request: Request, next_path: str, *, error: str | None = None, status_code: int = 200, headers=None):
    viewer = resolve(request)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        next=next_path,
        needed=login_needed(request),
        logged_in=viewer is not None and viewer.kind != "anonymous",
        error=error,
    )
    response.headers.update(headers or {})
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    return _page(request, local_path(next))


def _open(app, token: str, name: str, password: str):
    """A session for a valid token or name and password: (opened or None, the error to show)."""
    if token:
        record = app.tokens.by_digest(tok.digest(token)) if tok.well_formed(token) else None
        if record is not None and record.active:
            return app.users.open_session(record.scope, token_id=record.id), None
        return None, "This token is not valid (or was revoked)."
    user = app.users.verify(name, password) if name and password else None  # argon2: ~50 ms, off the loop
    if user is not None:
        return app.users.open_session(user.scope, user_id=user.id), None
    return None, "Wrong name or password."


@router.post("/login")
async def login(request: Request):
    viewer = await run_in_threadpool(resolve, request)
    form = await check_action(request, viewer or _VISITOR, "read")
    next_path = local_path(form.get("next"))
    users = request.app.state.dockyard.users
    token, name, password = form.get("token", "").strip(), form.get("name", "").strip(), form.get("password", "")
    by_address, by_name = _buckets(request)
    address = request.client.host if request.client else "unknown"
    wait = max(by_address.take(address), by_name.take(name.lower()) if name and not token else 0.0)
    if wait:
        retry = max(1, math.ceil(wait))
        return await run_in_threadpool(
            _page,
            request,
            next_path,
            error=f"Too many login attempts: try again in {retry} s.",
            status_code=429,
            headers={"Retry-After": str(retry)},
        )
    opened, error = await run_in_threadpool(_open, request.app.state.dockyard, token, name, password)
    if opened is None:
        return await run_in_threadpool(_page, request, next_path, error=error, status_code=401)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await run_in_threadpool(users.close_session, old)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie,
        max_age=opened.expires_in_s,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request):
    viewer = await run_in_threadpool(resolve, request)
    await check_action(request, viewer or _VISITOR, "read")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(request.app.state.dockyard.users.close_session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="lax")
    return response
