"""What every route module shares: the error responses, path ids, OpenAPI bits (the App and
the account check are in :mod:`dockyard.api.deps`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request

from dockyard.api.params import list_param

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {
            "type": "object",
            "properties": {
                "code": {"type": "integer"},
                "is_success": {"type": "boolean"},
                "user_message": {"type": "string"},
                "developer_message": {"type": "string"},
            },
        },
        "data": {"type": "null"},
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for code, text in (
        (400, "Invalid request"),
        (401, "No valid token"),
        (403, "The token's scope is too narrow, or the API command policy refuses the request"),
        (404, "Not found (or another account's)"),
        (409, "Conflict"),
        (413, "Request body too large"),
        (422, "Invalid request"),
        (429, "Rate limited (see Retry-After)"),
    )
}


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def includes(request: Request) -> set[str]:
    return set(list_param(request, "include_related") or [])


def body_schema(model, *, form: bool = True) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that routes parse themselves (liberally)."""
    schema = model.model_json_schema()
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"requestBody": {"required": False, "content": content}}


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the store
Id = Annotated[int, Path(ge=0, le=MAX_ID)]
