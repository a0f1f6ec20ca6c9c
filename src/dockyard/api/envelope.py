"""The JSON envelope of every API answer: ``{"status": {...}, "data": ...}`` (dbt Cloud's)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

MESSAGES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def status(code: int, user_message: str | None = None, developer_message: str = "") -> dict[str, Any]:
    ok = 200 <= code < 300
    return {
        "code": code,
        "is_success": ok,
        "user_message": user_message or ("Success!" if ok else MESSAGES.get(code, "Error")),
        "developer_message": developer_message,
    }


def ok(data: Any, code: int = 200, extra: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status(code), "data": data}
    if extra is not None:
        body["extra"] = extra
    return JSONResponse(body, status_code=code)


def error(
    code: int, user_message: str | None = None, developer_message: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"status": status(code, user_message, developer_message), "data": None}, status_code=code, headers=headers
    )


def listing(
    data: list,
    *,
    limit: int,
    offset: int,
    total: int,
    order_by: str,
    filters: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A list with dbt Cloud's ``extra``: the effective ``filters.limit``/``offset`` (always
    ints), ``order_by`` and ``pagination.count``/``total_count``."""
    block = {
        "filters": {**(filters or {}), "limit": limit, "offset": offset},
        "order_by": order_by,
        "pagination": {"count": len(data), "total_count": total},
    }
    if extra:
        block.update(extra)
    return ok(data, extra=block)
