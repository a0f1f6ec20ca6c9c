"""Row ↔ value-object conversions for the store, and the DB error translation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from dockyard.domain import (
    ArtifactRef,
    JobRecord,
    NodeResult,
    RunRecord,
    RunStatus,
    StepResult,
    StepStatus,
)
from dockyard.errors import ConflictError, DockyardError, StoreError, ValueRefusedError
from dockyard.store.engine import mask_url
from dockyard.text import storable


@dataclass
class StoredRun(RunRecord):
    """A :class:`RunRecord` plus the columns only the store, scheduler and workers need."""

    queued_at: datetime | None = None
    updated_at: datetime | None = None
    priority: int = 0
    overrides: dict | None = None
    git_sha: str | None = None
    git_branch: str | None = None
    lease_epoch: int = 0
    heartbeat_at: datetime | None = None
    not_before: datetime | None = None
    claimed_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    coalesced: int = 0
    host: str | None = None
    pgid: int | None = None
    idempotency_key: str | None = None
    warehouse_sessions: dict | None = None


NODE_FIELDS = tuple(f.name for f in fields(NodeResult) if f.name != "step_index")  # written
NODE_TEXT_FIELDS = ("name", "resource_type", "status")  # "" means "unknown" for these


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (unknown objects become strings); ``None`` stays."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def run_status(value: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise DockyardError(
            f"Unknown run status {value!r}", hint="use one of " + ", ".join(s.value for s in RunStatus)
        ) from None


def step_status(value: StepStatus | str) -> StepStatus:
    try:
        return StepStatus(value)
    except ValueError:
        raise DockyardError(
            f"Unknown step status {value!r}", hint="use one of " + ", ".join(s.value for s in StepStatus)
        ) from None


def job_record(row: Mapping[str, Any]) -> JobRecord:
    return JobRecord(
        id=row["id"],
        name=row["name"],
        environment=row["environment"],
        cron=row["cron"],
        timezone=row["timezone"],
        definition=row["definition"] or {},
        active=bool(row["active"]),
    )


def run_record(row: Mapping[str, Any]) -> StoredRun:
    return StoredRun(
        id=row["id"],
        job_id=row["job_id"],
        job=row["job_name"],
        environment=row["environment"],
        status=RunStatus(row["status"]),
        reason=row["reason"],
        trigger=row["trigger"],
        cause=row["cause"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        scheduled_for=row["scheduled_for"],
        attempt=row["attempt"],
        retry_of=row["retry_of"],
        has_warnings=bool(row["has_warnings"]),
        queued_at=row["queued_at"],
        updated_at=row["updated_at"],
        priority=row["priority"],
        overrides=row["overrides"],
        git_sha=row["git_sha"],
        git_branch=row["git_branch"],
        artifacts_dir=row["artifacts_dir"],
        worker_id=row["worker_id"],
        lease_epoch=row["lease_epoch"],
        heartbeat_at=row["heartbeat_at"],
        not_before=row["not_before"],
        claimed_at=row["claimed_at"],
        cancel_requested_at=row["cancel_requested_at"],
        coalesced=row["coalesced"],
        host=row["host"],
        pgid=row["pgid"],
        idempotency_key=row["idempotency_key"],
        warehouse_sessions=row["warehouse_sessions"],
    )


def step_result(row: Mapping[str, Any]) -> StepResult:
    return StepResult(
        index=row["index"],
        command=row["command"],
        status=StepStatus(row["status"]),
        exit_code=row["exit_code"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def node_result(row: Mapping[str, Any]) -> NodeResult:
    return NodeResult(step_index=row["step_index"], **{name: row[name] for name in NODE_FIELDS})


def artifact_ref(row: Mapping[str, Any]) -> ArtifactRef:
    return ArtifactRef(
        step_index=row["step_index"], name=row["name"], path=row["path"], size=row["size"], sha256=row["sha256"]
    )


def node_row(node: NodeResult) -> dict[str, Any]:
    """A node's row; its texts come from dbt (and the warehouse): NUL bytes and lone
    surrogates, which no store can hold, are replaced (:func:`dockyard.text.storable`)."""
    row = {name: storable(getattr(node, name)) for name in NODE_FIELDS}
    for name in NODE_TEXT_FIELDS:
        row[name] = row[name] or ""
    row["adapter_response"] = storable(jsonable(row["adapter_response"]))
    return row


def merge_node_rows(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What the SQL upsert does, for two events of one node within a batch."""
    merged = dict(old)
    for name, value in new.items():
        if name == "status":
            if value and not (value == "started" and old["status"]):
                merged[name] = value
        elif value is not None and value != "":
            merged[name] = value
    return merged


@contextmanager
def translate_errors(url: URL) -> Iterator[None]:
    """Turn SQLAlchemy/driver errors into :mod:`dockyard.errors` with a fix hint."""
    try:
        yield
    except DockyardError:
        raise
    except (sa_exc.DataError, UnicodeEncodeError, OverflowError) as exc:
        # PostgreSQL's class 22 (NUL in text, too long, out of range), a lone surrogate no
        # driver can encode, an integer SQLite cannot hold: the value is wrong, the store is fine
        reason = _reason(exc, url) if isinstance(exc, sa_exc.DBAPIError) else str(exc)
        raise ValueRefusedError(
            f"The run store cannot hold a value of this request: {reason.split(' [SQL:')[0]}",
            hint="remove NUL bytes and unpaired surrogates, and keep numbers and text within range",
        ) from exc
    except sa_exc.IntegrityError as exc:
        raise ConflictError(
            f"The run store refused the change: {_reason(exc, url)}",
            hint="a referenced job or run does not exist, or the row already exists",
        ) from exc
    except sa_exc.DBAPIError as exc:
        raise store_error(exc, url) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreError(f"Run store error at {mask_url(url)}: {exc}") from exc


def store_error(exc: sa_exc.DBAPIError, url: URL) -> StoreError:
    masked = mask_url(url)
    reason = _reason(exc, url)
    lowered = reason.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return StoreError(
            f"The run store at {masked} is not initialised ({reason})",
            hint="run the store migrations first (Store.migrate(), done by dockyard on start-up)",
        )
    if url.get_backend_name() == "sqlite":
        if "locked" in lowered or "busy" in lowered:
            hint = (
                "another process kept the SQLite database locked for over 30 s; retry, or "
                "use PostgreSQL for busy deployments"
            )
        else:
            hint = "check that the file and its folder exist and are readable and writable"
        return StoreError(f"Cannot use the SQLite run store at {masked}: {reason}", hint=hint)
    if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        where = f"{url.host or 'localhost'}:{url.port or 5432}"
        return StoreError(
            f"Cannot reach the run store at {masked}: {reason}",
            hint=f"check that PostgreSQL is running and accepting connections at {where}, and "
            "that the user, password and database in the store URL are right",
        )
    return StoreError(f"Run store error at {masked}: {reason}")


def _reason(exc: sa_exc.DBAPIError, url: URL) -> str:
    text = str(exc.orig or exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = "; ".join(lines[:3]) or type(exc.orig or exc).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason
