"""The generic webhook: dbt Cloud's webhook body, signed as dbt Cloud and Standard Webhooks sign.

A run alert's body (:func:`body`) is the one dbt Cloud posts, so a receiver written for dbt
Cloud works unchanged: ``accountId``, ``webhooksID``, ``eventId``, ``timestamp``,
``eventType`` (``job.run.started``; ``job.run.completed`` for a success, a success with
warnings, a resolve or a cancel; ``job.run.errored`` for a failure or a timeout),
``webhookName`` and ``data`` {``jobId``, ``jobName``, ``runId``, ``environmentId``,
``environmentName``, ``dbtVersion``, ``projectId``, ``runStatus`` (Running, Success,
Errored, Cancelled), ``runStatusCode`` (3, 10, 20, 30), ``runStatusMessage``, ``runReason``,
``runStartedAt``, ``runFinishedAt`` or ``runErroredAt``}. Other alerts (freshness, monitors,
slowdowns, the digest, a test) keep the envelope with ``eventType`` ``dockyard.<kind>.<event>``
and ``data`` = the alert. Both carry ``dockyard``: the alert itself (kind, event, subject,
severity, title, text, facts, items, url, final, resolves), which dbt Cloud receivers ignore.

With a ``secret``, every request carries:

* ``Authorization: <hex HMAC-SHA256 of the raw body, keyed with the secret>`` (dbt Cloud);
* ``webhook-id`` (the ``eventId``: the same on every attempt of one delivery, for receivers'
  idempotency), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature:
  v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` (Standard Webhooks 1.0; a secret
  ``whsec_<base64>`` is decoded to its key bytes, any other secret is used as UTF-8 bytes).

To rotate a secret without a gap, give both, separated by a space or a newline, the new one
first: ``webhook-signature`` then holds a signature per secret (receivers accept either),
``Authorization`` the new one's. Without a secret the body is posted unsigned (receivers
cannot tell it from a forgery).
A 2xx answer is a success; 429 and 5xx are retried, any other status is final.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from dockyard.alert import Alert, AlertKind
from dockyard.channels import http

PROJECT_ID = "1"  # one dbt project per dockyard server (as the dbt Cloud API answers)
#: run status -> (eventType, runStatus, runStatusCode)
STATUS = {
    "queued": ("job.run.started", "Running", 3),
    "starting": ("job.run.started", "Running", 3),
    "running": ("job.run.started", "Running", 3),
    "success": ("job.run.completed", "Success", 10),
    "error": ("job.run.errored", "Errored", 20),
    "cancelled": ("job.run.completed", "Cancelled", 30),
}
#: alert event -> run status, when the alert carries no run payload status
EVENT_STATUS = {
    "started": "running",
    "succeeded": "success",
    "warning": "success",
    "resolved": "success",
    "failed": "error",
    "timed_out": "error",
    "cancelled": "cancelled",
}


def _ts(value: datetime | str | None, *, fraction: bool = False) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if fraction else "%Y-%m-%dT%H:%M:%SZ")


def _dbt_version() -> str:
    try:
        return metadata.version("dbt-core")
    except metadata.PackageNotFoundError:
        return ""


def event_id(alert: Alert, webhook_id: str) -> str:
    """``wev_<hex>``: stable per alert and webhook (retries of one delivery share it)."""
    return "wev_" + hashlib.sha256(f"{webhook_id}\0{alert.key}".encode()).hexdigest()[:27]


def _summary(alert: Alert) -> dict[str, Any]:
    data = alert.to_dict()
    return {
        k: data[k]
        for k in (
            "kind",
            "event",
            "subject",
            "severity",
            "title",
            "text",
            "facts",
            "items",
            "items_total",
            "url",
            "job",
            "environment",
            "run_id",
            "final",
            "resolves",
            "created_at",
        )
    }


def _run_data(alert: Alert, run: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    status = run.get("status") if run.get("status") in STATUS else EVENT_STATUS.get(alert.event, "error")
    event_type, run_status, code = STATUS[status]
    data: dict[str, Any] = {
        "jobId": None if run.get("job_id") is None else str(run["job_id"]),
        "jobName": run.get("job", alert.job),
        "runId": str(run.get("run_id", alert.run_id)),
        "environmentId": None if run.get("environment_id") is None else str(run["environment_id"]),
        "environmentName": run.get("environment", alert.environment),
        "dbtVersion": _dbt_version(),
        "projectId": PROJECT_ID,
        "runStatus": run_status,
        "runStatusCode": code,
        "runStatusMessage": run.get("reason") or "None",
        "runReason": run.get("cause") or run.get("trigger") or "",
        "runStartedAt": _ts(run.get("started_at")),
    }
    if code == 20:
        data["runErroredAt"] = _ts(run.get("finished_at"))
    elif code in (10, 30):
        data["runFinishedAt"] = _ts(run.get("finished_at"))
    return event_type, data


def document(alert: Alert, *, account_id: int, webhook_id: str, webhook_name: str | None = None) -> dict[str, Any]:
    """The JSON document :func:`body` serialises (see the module doc)."""
    if alert.kind == AlertKind.RUN and alert.run:
        event_type, data = _run_data(alert, alert.run)
    else:
        event_type, data = f"dockyard.{alert.kind.value}.{alert.event}", _summary(alert)
    return {
        "accountId": account_id,
        "webhooksID": webhook_id,
        "eventId": event_id(alert, webhook_id),
        "timestamp": _ts(alert.created_at, fraction=True),
        "eventType": event_type,
        "webhookName": webhook_name or webhook_id,
        "data": data,
        "dockyard": _summary(alert),
    }


def body(alert: Alert, *, account_id: int, webhook_id: str, webhook_name: str | None = None) -> bytes:
    """The raw body posted (and signed): compact UTF-8 JSON of :func:`document`."""
    doc = document(alert, account_id=account_id, webhook_id=webhook_id, webhook_name=webhook_name)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signing_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks signature: ``whsec_<base64>`` decoded, else UTF-8."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def authorization(raw: bytes, secret: str) -> str:
    """dbt Cloud's ``Authorization`` value: hex HMAC-SHA256 of the body with the secret."""
    return hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def signature(msg_id: str, timestamp: int, raw: bytes, secret: str) -> str:
    """The Standard Webhooks ``webhook-signature`` value: ``v1,<base64>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def secrets_of(secret: str | None) -> list[str]:
    """The signing secrets in ``secret``: one, or several separated by spaces or newlines
    (a rotation: the new one first)."""
    return (secret or "").split()


def headers(raw: bytes, secret: str | None, msg_id: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The signature headers of one attempt (none but ``webhook-id`` without a secret).

    During a rotation (``secret`` holds several, the new one first) ``webhook-signature``
    carries one ``v1,`` signature per secret, space-separated, as Standard Webhooks
    specifies, and ``Authorization`` (one value only) the new secret's."""
    ts = int(time.time()) if timestamp is None else timestamp
    out = {"webhook-id": msg_id, "webhook-timestamp": str(ts)}
    keys = secrets_of(secret)
    if keys:
        out["Authorization"] = authorization(raw, keys[0])
        out["webhook-signature"] = " ".join(signature(msg_id, ts, raw, key) for key in keys)
    return out


def send(
    url: str,
    secret: str | None,
    alert: Alert,
    *,
    account_id: int,
    timeout: float,
    allow_hosts: Sequence[str] = (),
    webhook_id: str = "dockyard",
    webhook_name: str | None = None,
) -> str:
    """Post the signed body of ``alert`` to ``url``; returns the status ("200")."""
    raw = body(alert, account_id=account_id, webhook_id=webhook_id, webhook_name=webhook_name)
    msg_id = event_id(alert, webhook_id)
    answer = http.post(
        url,
        raw,
        what="webhook",
        headers={"Content-Type": "application/json", **headers(raw, secret, msg_id)},
        timeout=timeout,
        allow_hosts=allow_hosts,
        secrets=[secret, *secrets_of(secret)],
    )
    return str(answer.status)
