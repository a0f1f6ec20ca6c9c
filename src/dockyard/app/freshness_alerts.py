"""The alerts of source freshness changes, as pure functions (docs/monitors.md, "Source freshness").

A *change* is a check whose status differs from the source's previous check in the same
environment (the first check of a source counts only when it is not ``pass``). The changes of
one step make at most one alert per new status, listing the sources:

- sources turning ``warn``: event ``warn``, severity warning;
- sources turning ``error`` or ``runtime error``: event ``error``, severity critical;
- once no source of the environment is stale any more, the sources that came back to
  ``pass`` in the step make a resolve (event ``pass``, ``resolves=True``, severity ok). A
  source that recovers while others stay stale is shown by ``dockyard freshness``, not
  announced (a "resolved" would close the incident while sources are still stale).

Every alert's subject is the environment's freshness incident, ``freshness:<env>``, not the
source: 40 sources going stale at once are one message; PagerDuty keeps one incident per
environment (a warn then an error update it through the same ``dedup_key``, the resolve
closes it); the no-storm rules of the channels apply to the incident (docs/alerts.md: more
sources turning ``warn`` within ``alerts.realert_minutes`` of the last ``warn`` alert are
logged as suppressed). Alert keys are per run, step and status: an event delivered twice makes the
same alerts, which the alert queue takes once.
"""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.alert import MAX_ITEMS, Alert, AlertItem, AlertKind, Severity, first_lines
from dockyard.dbt.sources import describe_criteria
from dockyard.store.freshness import FreshnessRecord

#: the event (and incident) of each status; runtime errors are errors
EVENTS = {"pass": "pass", "warn": "warn", "error": "error", "runtime error": "error"}
SEVERITIES = {"warn": Severity.WARNING, "error": Severity.CRITICAL}


def age_text(seconds: float | None) -> str | None:
    """``25920`` → ``"7 h 12 min"`` (``"3 d 4 h"``, ``"45 min"``, ``"30 s"``)."""
    if seconds is None:
        return None
    total = int(round(max(0.0, seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{secs} s"


def is_change(row: FreshnessRecord) -> bool:
    if row.previous_status is None:
        return row.status != "pass"
    return row.status != row.previous_status


def changes(rows: Sequence[FreshnessRecord]) -> list[FreshnessRecord]:
    """The rows of a step that changed status (see the module doc)."""
    return [r for r in rows if is_change(r)]


def source_label(row: FreshnessRecord) -> str:
    return f"{row.source_name}.{row.table_name}" if row.source_name else row.table_name


def _item(row: FreshnessRecord) -> AlertItem:
    was = f"was {row.previous_status}" if row.previous_status else "first check"
    if row.status == "runtime error":
        message = f"{was}\n{row.error or 'the freshness check failed'}"
    else:
        age = f"age {age_text(row.age_seconds)}, " if row.age_seconds is not None else ""
        message = f"{age}{describe_criteria(row.warn_after, row.error_after)}; {was}"
    return AlertItem(source_label(row), row.status, first_lines(message), row.unique_id)


def _facts(rows: Sequence[FreshnessRecord]) -> tuple[tuple[str, str], ...]:
    first = rows[0]
    facts = [("Environment", first.environment)]
    if first.job:
        facts.append(("Job", first.job))
    facts.append(("Run", f"#{first.run_id}"))
    if len(rows) == 1:
        facts.append(("Source", source_label(first)))
        if first.age_seconds is not None:
            facts.append(("Age", age_text(first.age_seconds) or ""))
        if first.max_loaded_at is not None:
            facts.append(("Max loaded at", first.max_loaded_at.isoformat()))
        facts.append(("Thresholds", describe_criteria(first.warn_after, first.error_after)))
    return tuple(facts)


def _alert(
    rows: Sequence[FreshnessRecord],
    *,
    event: str,
    key: str,
    title: str,
    text: str,
    severity: Severity,
    resolves: bool,
    public_url: str | None,
) -> Alert:
    first = rows[0]
    url = f"{public_url.rstrip('/')}/runs/{first.run_id}" if public_url else None
    return Alert(
        kind=AlertKind.FRESHNESS,
        event=event,
        subject=f"freshness:{first.environment}",
        key=key,
        title=title,
        severity=severity,
        text=text,
        facts=_facts(rows),
        items=tuple(_item(r) for r in rows[:MAX_ITEMS]),
        items_total=len(rows),
        url=url,
        job=first.job,
        environment=first.environment,
        run_id=first.run_id,
        resolves=resolves,
    )


def _names(rows: Sequence[FreshnessRecord]) -> str:
    shown = ", ".join(source_label(r) for r in rows[:3])
    return shown + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")


def build_alerts(
    changed: Sequence[FreshnessRecord],
    *,
    stale_left: Sequence[FreshnessRecord],
    public_url: str | None = None,
) -> list[Alert]:
    """The alerts of one step's changes (all of one run, step and environment);
    ``stale_left``: the latest check of every source of the environment that is not ``pass``
    after the step (the incident stays open while there is one)."""
    if not changed:
        return []
    first = changed[0]
    env, base = first.environment, f"freshness:{first.run_id}:{first.step_index}"
    alerts: list[Alert] = []
    for incident in ("error", "warn"):
        rows = [r for r in changed if EVENTS[r.status] == incident]
        if not rows:
            continue
        what = "in error" if incident == "error" else "stale (warn)"
        title = (
            f"Source {source_label(rows[0])} is {what} in {env}"
            if len(rows) == 1
            else f"{len(rows)} sources are {what} in {env}"
        )
        text = f"Source freshness of {_names(rows)} changed to {incident} (dbt source freshness, run #{first.run_id})."
        alerts.append(
            _alert(
                rows,
                event=incident,
                key=f"{base}:{incident}",
                title=title,
                text=text,
                severity=SEVERITIES[incident],
                resolves=False,
                public_url=public_url,
            )
        )
    back = [r for r in changed if r.status == "pass"]
    if back and not stale_left:
        title = (
            f"Source {source_label(back[0])} is fresh again in {env}"
            if len(back) == 1
            else f"{len(back)} sources are fresh again in {env}"
        )
        alerts.append(
            _alert(
                back,
                event="pass",
                key=f"{base}:pass",
                title=title,
                text=f"Every source of {env} is fresh again ({_names(back)}: pass).",
                severity=Severity.OK,
                resolves=True,
                public_url=public_url,
            )
        )
    return alerts
