"""Who is looking at a page, and whether they may act (docs/ui.md, "Auth").

The UI follows the API: while the API needs no token (no token, no user, a loopback
address) every viewer is an anonymous admin; otherwise a login (an API token, or a user's
name and password) opens a server-side session whose cookie ``dockyard_session`` the store
keeps only as a SHA-256 digest. Every request resolves its session in the store, so a
revoked token or a deleted user ends it at the next request.

Every state-changing form is checked by :func:`check_action`: the CSRF token (the session's
secret, or before a session a random value bound to the ``dockyard_csrf`` cookie), the
``Origin``/``Referer`` when the browser sends one, and the viewer's scope.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request

from dockyard import tokens as tok
from dockyard.api.auth import AuthError
from dockyard.errors import DockyardError, ForbiddenError

SESSION_COOKIE = "dockyard_session"
CSRF_COOKIE = "dockyard_csrf"
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 100


@dataclass(frozen=True)
class Viewer:
    name: str
    scope: str  # read | trigger | admin
    kind: str  # anonymous | user | token

    def can(self, scope: str) -> bool:
        return tok.allows(self.scope, scope)


ANONYMOUS = Viewer("anonymous", "admin", "anonymous")


class LoginRequired(Exception):
    """A page needs a login: the site answers 303 to :attr:`location`."""

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class CsrfError(ForbiddenError):
    pass


def login_needed(request: Request) -> bool:
    """Whether the API needs a token (or any UI user exists)."""
    if request.app.state.auth.auth_on():
        return True
    return request.app.state.dockyard.users.any()


def is_https(request: Request) -> bool:
    public = request.app.state.dockyard.config.server.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def _csrf_for_visitor(request: Request) -> str:
    """The cookie-bound CSRF token of a viewer without a session (set on the response)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) < 32 or len(value) > 128:
        value = secrets.token_urlsafe(32)
        request.state.set_csrf_cookie = value
    return value


def resolve(request: Request) -> Viewer | None:
    """The viewer of this request (None: a login is needed); sets ``request.state``'s
    ``viewer``, ``csrf`` and ``header_auth``."""
    state = request.state
    if hasattr(state, "viewer"):
        return state.viewer
    app = request.app.state.dockyard
    app.refresh()
    viewer, state.header_auth, state.csrf = None, False, ""
    if request.headers.get("authorization"):  # an API client: its token, checked like the API's
        principal = request.app.state.auth.check(request, "read")
        viewer, state.header_auth = Viewer(principal.name, principal.scope, "token"), True
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        session = app.users.resolve_session(cookie) if cookie else None
        if session is not None:
            viewer, state.csrf = Viewer(session.name, session.scope, session.kind), session.csrf
        elif not login_needed(request):
            viewer = ANONYMOUS
    if not state.csrf:
        state.csrf = _csrf_for_visitor(request)
    state.viewer = viewer
    return viewer


def login_location(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")


def page_viewer(request: Request) -> Viewer:
    """A page's viewer; without one, a redirect to the login page (303)."""
    viewer = resolve(request)
    if viewer is None:
        raise LoginRequired(login_location(request))
    return viewer


def live_viewer(request: Request) -> Viewer:
    """A JSON endpoint's viewer; without one, 401 (JSON)."""
    viewer = resolve(request)
    if viewer is None:
        raise AuthError("Log in first", hint="open /login, or send 'Authorization: Token <token>'")
    return viewer


ViewerDep = Annotated[Viewer, Depends(page_viewer)]
LiveViewerDep = Annotated[Viewer, Depends(live_viewer)]


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the first value of each field), read once."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if kind and kind != "application/x-www-form-urlencoded":
        raise DockyardError("Send the form URL-encoded (application/x-www-form-urlencoded)")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DockyardError("The form could not be read", hint=str(exc)[:200]) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    request.state.form = form
    return form


def _same_origin(request: Request, url: str) -> bool:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    own = {f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}".lower()}
    public = request.app.state.dockyard.config.server.public_url
    if public:
        pub = urlsplit(public)
        own.add(f"{pub.scheme}://{pub.netloc}".lower())
    return origin in own


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or not _same_origin(request, origin):
            raise CsrfError("This form was sent from another site", hint="reload the page and try again")
    elif request.headers.get("referer") and not _same_origin(request, request.headers["referer"]):
        raise CsrfError("This form was sent from another site", hint="reload the page and try again")


async def check_action(request: Request, viewer: Viewer, scope: str) -> dict[str, str]:
    """Every POST of a page: same origin, the CSRF token, then ``scope``; the form (403 else)."""
    resolve(request)
    check_origin(request)
    form = await read_form(request)
    if not request.state.header_auth:
        sent, expected = form.get(CSRF_FIELD, ""), request.state.csrf
        if not sent or not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            raise CsrfError("This form has expired or was not sent by this site", hint="reload the page and try again")
    if not viewer.can(scope):
        raise ForbiddenError(f"You ({viewer.scope}) cannot do this", hint=f"it needs the {scope} scope or above")
    return form
