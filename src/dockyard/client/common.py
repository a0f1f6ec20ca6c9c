"""What the sync and async clients share: the run record, stream events, the one error
(the API's JSON error shape parsed), and the retry rules (429/503 with ``Retry-After``,
connection errors, both bounded)."""

from __future__ import annotations

import os
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from dockyard.errors import DockyardError

FINAL = frozenset({"success", "error", "cancelled", "skipped"})
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 60.0
RETRYABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class ClientError(DockyardError):
    """A dockyard server refused a request or could not be reached. ``status`` is the HTTP
    status (0: no answer), ``message`` the API's ``user_message``, ``developer_message`` its
    other message, ``retry_after`` the seconds it asked to wait (429, 503)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        developer_message: str = "",
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ):
        self.status = status or 503
        self.http_status = status
        self.message = message
        self.developer_message = developer_message
        self.retry_after = retry_after
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{status or 'no answer'}: {message}" if status else f"{where}{message}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ClientError:
        user, developer = "", ""
        try:
            body = response.json()
        except ValueError:
            body = None
        state = body.get("status") if isinstance(body, dict) else None
        if isinstance(state, dict):
            user = str(state.get("user_message") or "")
            developer = str(state.get("developer_message") or "")
        if not user:
            user = developer or response.reason_phrase or "error"
        return cls(
            response.status_code,
            user,
            developer_message=developer,
            method=response.request.method,
            path=response.request.url.path,
            retry_after=retry_after(response),
        )


@dataclass(frozen=True)
class Run:
    """A run as the native API answers it (``raw``), with the fields callers use most."""

    id: int
    status: str
    job: str | None = None
    job_id: int | None = None
    environment: str | None = None
    reason: str | None = None
    nodes: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, data: dict) -> Run:
        return cls(
            id=int(data["id"]),
            status=str(data.get("status")),
            job=data.get("job"),
            job_id=data.get("job_id"),
            environment=data.get("environment"),
            reason=data.get("reason"),
            nodes=list(data.get("nodes") or []),
            steps=list(data.get("steps") or []),
            raw=data,
        )

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    def node(self, unique_id: str) -> dict | None:
        """The node's last result in the run (a node can run in several steps)."""
        found = [n for n in self.nodes if n.get("unique_id") == unique_id]
        return found[-1] if found else None


@dataclass(frozen=True)
class Event:
    """What :meth:`Client.stream` yields: ``kind`` is ``"status"`` (``run`` changed status)
    or ``"log"`` (``line``, a new line of dbt's log)."""

    kind: str
    run: Run | None = None
    line: str | None = None


def settings(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The server's URL and token: given, or ``DOCKYARD_URL`` / ``DOCKYARD_TOKEN``."""
    url = url or os.environ.get("DOCKYARD_URL")
    if not url:
        raise DockyardError("no dockyard server URL", hint="pass url= or set DOCKYARD_URL")
    return url.rstrip("/"), token if token is not None else os.environ.get("DOCKYARD_TOKEN") or None


def tls(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    """``verify``: True, False, a CA bundle's path or an SSL context."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def headers(token: str | None) -> dict[str, str]:
    out = {"Accept": "application/json", "User-Agent": "dockyard-client"}
    if token:
        out["Authorization"] = f"Token {token}"
    return out


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None


def backoff(attempt: int) -> float:
    return min(0.25 * 2**attempt, 8.0)


def trigger_body(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if v is not None}


def idempotency(key: str | None) -> dict[str, str]:
    """A key per logical request, so that a retried POST never queues a second run."""
    return {"Idempotency-Key": key or f"dockyard-client-{uuid.uuid4()}"}


def data(response: httpx.Response) -> Any:
    return response.json().get("data")


def new_lines(text: str, seen: int) -> tuple[list[str], int]:
    """Complete lines of ``text`` after the first ``seen`` characters, and the new ``seen``."""
    if len(text) < seen:  # the log was cut at its head (its size limit): start again
        seen = 0
    end = text.rfind("\n") + 1
    if end <= seen:
        return [], seen
    return text[seen:end].splitlines(), end


def job_id(jobs: list[dict], job: int | str) -> int:
    """A job's id from its id or its name."""
    if isinstance(job, int) or (isinstance(job, str) and job.isdigit()):
        return int(job)
    for j in jobs:
        if j.get("name") == job:
            return int(j["id"])
    raise ClientError(404, f"no job named {job!r} (jobs: {', '.join(str(j.get('name')) for j in jobs)})")
