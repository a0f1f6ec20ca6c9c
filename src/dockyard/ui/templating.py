"""Jinja2 for the pages: one environment over ``ui/templates`` (autoescape on for every
template), :func:`render`, and the filters ``when``, ``duration``, ``status``, ``number``.

Filters that make HTML escape what they are given and return :class:`markupsafe.Markup`;
nothing else is ever marked safe.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape

from dockyard import __version__, clock
from dockyard.ui.auth import CSRF_COOKIE, is_https

STATUS_ICONS = {
    "success": "✓",
    "error": "✗",
    "fail": "✗",
    "failed": "✗",
    "cancelled": "⊘",
    "skipped": "↷",
    "warn": "!",
    "queued": "…",
    "starting": "◔",
    "running": "◔",
    "retrying": "↻",
    "lost": "?",
    "pass": "✓",
    "stale": "!",
}


def when(value) -> Markup:
    """A ``<time>`` in UTC (dockyard.js shows it in the viewer's time zone; UTC on hover)."""
    if value is None or value == "":
        return Markup('<span class="muted">never</span>')
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return Markup(escape(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    iso = value.isoformat(timespec="seconds").replace("+00:00", "Z")
    text = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, text, text)


def duration(seconds) -> str:
    """Seconds as ``850 ms``, ``42s``, ``1m 03s``, ``2h 05m``; ``-`` when unknown."""
    if seconds is None or seconds == "":
        return "-"
    seconds = float(seconds)
    if seconds < 0:
        return "-"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def status(value, label: str | None = None) -> Markup:
    """A status badge: icon and text (``label``, else the status; never colour alone), class
    ``st-<status>``."""
    text = str(getattr(value, "value", value) or "unknown").lower()
    css = "".join(c if c.isalnum() else "-" for c in text)
    icon = STATUS_ICONS.get(text, "•")
    return Markup('<span class="badge st-{}"><span aria-hidden="true">{}</span> {}</span>').format(
        css, icon, label or text
    )


def number(value, digits: int = 0) -> str:
    """Thousands separated (``12,345``); ``-`` when unknown."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(float(value)):,}" if isinstance(value, float) else f"{int(value):,}"


def tojson_block(value) -> Markup:
    """Data for a ``<script type="application/json">`` block (no ``</script>`` can end it)."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


_CSRF: ContextVar[str] = ContextVar("csrf_token", default="")


def current_csrf() -> str:
    """The CSRF token of the page being rendered (macros imported without context see it)."""
    return _CSRF.get()


ENV = Environment(
    loader=PackageLoader("dockyard.ui", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(when=when, duration=duration, status=status, number=number, json_block=tojson_block)
ENV.globals["current_csrf"] = current_csrf


def render(request: Request, name: str, *, status_code: int = 200, **context) -> HTMLResponse:
    """``name`` rendered with ``viewer``, ``csrf_token``, ``now``, ``version`` and ``request``."""
    state = request.state
    values = {
        "request": request,
        "viewer": getattr(state, "viewer", None),
        "csrf_token": getattr(state, "csrf", ""),
        "now": clock.now(),
        "version": __version__,
        "path": request.url.path,
        **context,
    }
    reset = _CSRF.set(values["csrf_token"])
    try:
        html = ENV.get_template(name).render(values)
    finally:
        _CSRF.reset(reset)
    response = HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
    fresh = getattr(state, "set_csrf_cookie", None)
    if fresh:
        response.set_cookie(CSRF_COOKIE, fresh, httponly=True, samesite="lax", secure=is_https(request), path="/")
    return response
