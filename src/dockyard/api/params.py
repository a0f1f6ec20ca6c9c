"""Liberal request parsing: list query parameters in every encoding, and bodies that are
JSON (objects with nulls, ``null``, empty) or form-encoded, whatever the client sends.
Bodies are bounded (:mod:`dockyard.payload`: depth, finite numbers, storable strings)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request

from dockyard.errors import DockyardError
from dockyard.payload import check, loads

MAX_LIMIT = 100
MAX_INT = 2**31 - 1  # the store's integers


def _int(text: str, name: str) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        raise DockyardError(f"{name} must be an integer, got {text!r}") from None
    if abs(number) > MAX_INT:
        raise DockyardError(f"{name} is out of range")
    return number


def list_param(request: Request, *names: str) -> list[str] | None:
    """All values of the first of ``names`` present: repeated keys (``?a=1&a=2``), comma
    strings (``1,2``), bracketed lists (``[1, 2]``, ``['a','b']``, ``["a"]``), merged.
    ``None`` when absent; ``[]`` for ``[]``."""
    for name in names:
        raw = request.query_params.getlist(name) + request.query_params.getlist(name + "[]")
        if raw:
            out: list[str] = []
            for value in raw:
                text = value.strip()
                if text.startswith("[") and text.endswith("]"):
                    text = text[1:-1]
                for part in text.split(","):
                    part = part.strip().strip("'\"").strip()
                    if part:
                        out.append(part)
            return out
    return None


def int_list(request: Request, *names: str) -> list[int] | None:
    values = list_param(request, *names)
    if values is None:
        return None
    return [_int(v, names[0]) for v in values]


def int_param(
    request: Request,
    name: str,
    default: int | None = None,
    *,
    low: int | None = None,
    high: int | None = None,
    clamp: bool = False,
) -> int | None:
    value = request.query_params.get(name)
    if value is None or value.strip() in ("", "null", "None"):
        return default
    number = _int(value, name)
    if low is not None and number < low:
        if clamp:
            return low
        raise DockyardError(f"{name} must be at least {low}")
    if high is not None and number > high:
        if clamp:
            return high
        raise DockyardError(f"{name} must be at most {high}")
    return number


def paging(request: Request, default_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """``limit`` (clamped to 1..100) and ``offset`` (≥ 0)."""
    limit = int_param(request, "limit", default_limit, low=1, high=MAX_LIMIT, clamp=True)
    offset = int_param(request, "offset", 0, low=0)
    return int(limit or default_limit), int(offset or 0)


def parse_time(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except ValueError:
        raise DockyardError(f"{name}: {text!r} is not a date or time (use ISO 8601)") from None
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise DockyardError(f"{name}: {text!r} is out of range (years 1 to 9999 in UTC)") from None


def time_range(request: Request, name: str) -> tuple[datetime | None, datetime | None] | None:
    values = list_param(request, name)
    if values is None:
        return None
    if len(values) != 2:
        raise DockyardError(f"{name} needs two times: [start, end]")
    start, end = (parse_time(v, name) if v not in ("null", "None") else None for v in values)
    return start, end


async def read_body(request: Request) -> dict[str, Any]:
    """The request body as a dict: ``{}`` for an empty body or JSON ``null``; form fields as
    strings (lists when repeated). Anything else that is not an object is a 400."""
    raw = await request.body()
    if not raw.strip():
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded" or (ctype != "application/json" and not _looks_json(raw)):
        return _form(raw)
    try:
        data = loads(raw)
    except DockyardError:
        raise
    except (ValueError, UnicodeDecodeError):
        if ctype == "application/json" and b"=" in raw and not raw.lstrip().startswith((b"{", b"[")):
            return _form(raw)  # form data sent with a JSON content type
        raise DockyardError("the request body is not valid JSON") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DockyardError("the request body must be a JSON object")
    return data


def _looks_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[", b"n", b'"')


def _form(raw: bytes) -> dict[str, Any]:
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise DockyardError("the request body is neither JSON nor form data") from None
    data = {k: (v[0] if len(v) == 1 else v) for k, v in fields.items()}
    check(data)
    return data
