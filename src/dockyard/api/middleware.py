"""ASGI middleware: path normalisation, query strings no store can take, body size limit,
last-resort errors, token-free logs."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl

from dockyard import tokens as tok
from dockyard.api.envelope import status
from dockyard.text import unstorable_problem

log = logging.getLogger("dockyard.api")
SLASHES = re.compile(r"/{2,}")
MAX_BODY = 1024 * 1024  # S7: 1 MiB


async def send_error(send, code: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"status": status(code, message), "data": None}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def normalise(path: str) -> str:
    """Collapse ``//`` and strip one trailing ``/`` (not from ``/`` itself)."""
    path = SLASHES.sub("/", path) or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


class NormalisePath:
    """Both trailing-slash forms and ``//`` reach the same route, without a redirect."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = normalise(scope["path"])
            if path != scope["path"]:
                scope = dict(scope, path=path)
                raw = scope.get("raw_path")
                if raw:
                    raw = re.sub(rb"/{2,}", b"/", raw)
                    if len(raw) > 1 and raw.endswith(b"/"):
                        raw = raw[:-1]
                    scope["raw_path"] = raw
        await self.app(scope, receive, send)


MAX_QUERY = 8192  # characters of a query string


class CheckQuery:
    """Answers 400 to a query string no route can use: longer than :data:`MAX_QUERY`, or a
    parameter (name or value) holding a NUL byte (PostgreSQL text cannot, SQLite's filters
    would silently differ), whatever route it is sent to."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("query_string"):
            raw = scope["query_string"].decode("latin-1")
            if len(raw) > MAX_QUERY:
                return await send_error(send, 400, f"The query string is longer than {MAX_QUERY} characters")
            for name, value in parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="replace"):
                problem = unstorable_problem(name, "a query parameter name") or unstorable_problem(
                    value, f"the query parameter {name!r}"
                )
                if problem:
                    return await send_error(send, 400, problem)
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


class LimitBody:
    """Answers 413 to a body larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app, max_bytes: int = MAX_BODY):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    return await send_error(send, 413, f"Request body larger than {self.max_bytes} bytes")
        seen = 0
        tracking = _TrackStart(send)

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, tracking)
        except _TooLarge:
            if not tracking.started:
                await send_error(send, 413, f"Request body larger than {self.max_bytes} bytes")


class _TrackStart:
    """An ASGI ``send`` that remembers whether the response has started (after which no
    error answer can be sent any more)."""

    def __init__(self, send):
        self.send = send
        self.started = False

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class CatchAll:
    """Any unexpected exception becomes the JSON error envelope (500), logged without tokens."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracking = _TrackStart(send)
        try:
            await self.app(scope, receive, tracking)
        except _TooLarge:
            raise  # LimitBody answers it
        except Exception:  # noqa: BLE001 - the last line of defence
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if not tracking.started:
                await send_error(send, 500, "Internal server error")


class _RedactingFactory:
    def __init__(self, previous):
        self.previous = previous

    def __call__(self, *args, **kwargs):
        record = self.previous(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is not ours to fix
            return record
        if tok.PREFIX in text:
            record.msg, record.args = tok.redact(text), ()
        return record


def redact_tokens_in_logs() -> None:
    """Every log record (any logger) has API tokens replaced by their display prefix."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(factory))
