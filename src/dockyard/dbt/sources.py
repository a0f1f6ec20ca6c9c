"""dbt's ``sources.json`` (what ``dbt source freshness`` writes) → :class:`SourceCheck`.

The artifact's schema (``https://schemas.getdbt.com/dbt/sources/v3.json``, read in dbt-core
1.11, ``dbt/artifacts/schemas/freshness/v3/freshness.py``)::

    {"metadata": {...}, "elapsed_time": 0.1,
     "results": [{"unique_id": "source.shop.raw.orders", "status": "warn",
                  "max_loaded_at": "2026-12-02T08:15:30.217092+00:00",
                  "snapshotted_at": "2026-12-02T10:15:33.235544+00:00",
                  "max_loaded_at_time_ago_in_s": 7203.0,
                  "criteria": {"warn_after": {"count": 1, "period": "hour"},
                               "error_after": {"count": 24, "period": "hour"}, "filter": null},
                  "adapter_response": {...}, "timing": [...], "thread_id": "...",
                  "execution_time": 0.07},
                 {"unique_id": "...", "status": "runtime error", "error": "..."}]}

``status`` is ``pass``, ``warn``, ``error`` (the age passed ``error_after``) or ``runtime
error`` (the check itself failed: a missing table, a bad ``loaded_at_field``). dbt 1.11 leaves
runtime errors out of the file (they are only in its log and structured events): the caller
adds them from the step's node results (:func:`runtime_error`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATUSES = ("pass", "warn", "error", "runtime error")
STALE = ("warn", "error", "runtime error")  # not fresh (``stale()``, the digest)
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class SourceCheck:
    """One source's freshness as one ``dbt source freshness`` step measured it."""

    unique_id: str
    source_name: str
    table_name: str
    status: str  # one of STATUSES
    max_loaded_at: datetime | None = None  # aware UTC
    snapshotted_at: datetime | None = None  # when dbt measured (aware UTC)
    age_seconds: float | None = None  # max_loaded_at_time_ago_in_s
    warn_after: dict | None = None  # {"count": 1, "period": "hour"}; None when unset
    error_after: dict | None = None
    error: str | None = None  # a runtime error's message (bounded)


def names(unique_id: str) -> tuple[str, str]:
    """``(source name, table name)`` of ``source.<package>.<source>.<table>``."""
    parts = unique_id.split(".", 3)
    if len(parts) == 4 and parts[0] == "source":
        return parts[2], parts[3]
    return "", unique_id


def _time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _criterion(criteria: Any, key: str) -> dict | None:
    value = criteria.get(key) if isinstance(criteria, dict) else None
    if not isinstance(value, dict) or value.get("count") in (None, 0) or not value.get("period"):
        return None
    return {"count": value["count"], "period": value["period"]}


def _bounded(text: Any) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def parse(data: Any) -> list[SourceCheck]:
    """The checks of a loaded ``sources.json`` (entries that are not results are skipped)."""
    results = data.get("results") if isinstance(data, dict) else None
    checks: list[SourceCheck] = []
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        uid, status = result.get("unique_id"), result.get("status")
        if not isinstance(uid, str) or not uid or status not in STATUSES:
            continue
        source_name, table_name = names(uid)
        age = result.get("max_loaded_at_time_ago_in_s")
        criteria = result.get("criteria")
        checks.append(
            SourceCheck(
                unique_id=uid,
                source_name=source_name,
                table_name=table_name,
                status=status,
                max_loaded_at=_time(result.get("max_loaded_at")),
                snapshotted_at=_time(result.get("snapshotted_at")),
                age_seconds=float(age) if isinstance(age, int | float) and not isinstance(age, bool) else None,
                warn_after=_criterion(criteria, "warn_after"),
                error_after=_criterion(criteria, "error_after"),
                error=_bounded(result.get("error")),
            )
        )
    return checks


def runtime_error(unique_id: str, message: str | None, at: datetime | None) -> SourceCheck:
    """A source whose check failed (from the step's node results: not in ``sources.json``)."""
    source_name, table_name = names(unique_id)
    return SourceCheck(unique_id, source_name, table_name, "runtime error", snapshotted_at=at, error=_bounded(message))


def describe_criterion(criterion: dict | None) -> str | None:
    """``{"count": 6, "period": "hour"}`` → ``"6 hours"``."""
    if not criterion:
        return None
    count, period = criterion.get("count"), str(criterion.get("period") or "")
    return f"{count} {period}{'' if count == 1 else 's'}"


def describe_criteria(warn_after: dict | None, error_after: dict | None) -> str:
    """``"warn after 1 hour, error after 24 hours"`` (``"no thresholds"`` without either)."""
    parts = [
        f"{word} after {text}"
        for word, text in (("warn", describe_criterion(warn_after)), ("error", describe_criterion(error_after)))
        if text
    ]
    return ", ".join(parts) or "no thresholds"
