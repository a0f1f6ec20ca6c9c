"""``/login`` (an API token, or a user's name and password) and ``POST /logout``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from dockyard.ui.auth import SESSION_COOKIE, check_action, is_https, login_needed, resolve
from dockyard.ui.templating import render

router = APIRouter(include_in_schema=False)


def local_path(target: str | None) -> str:
    """``next`` only when it is a path of this site (``/x``, never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    viewer = resolve(request)
    return render(
        request,
        "login.html",
        next=local_path(next),
        needed=login_needed(request),
        logged_in=viewer is not None and viewer.kind != "anonymous",
        error=None,
    )


@router.post("/logout")
async def logout(request: Request):
    viewer = resolve(request)
    if viewer is not None:
        await check_action(request, viewer, "read")
    cookie = request.cookies.get(SESSION_COOKIE)
    users = getattr(request.app.state.dockyard, "users", None)
    if cookie and users:
        users.close_session(cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="lax")
    return response
