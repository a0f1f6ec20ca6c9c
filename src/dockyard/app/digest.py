"""The daily digest: once a day at ``metrics.digest.at`` in ``metrics.digest.timezone``, one
alert (kind ``digest``, subject ``digest:<local date>``) with the last 24 hours: runs by
status, the failed runs, the slowest models, the stale sources; sent to the top-level
notifications named in ``metrics.digest.notify`` (docs/metrics.md).

:func:`due_day` is the pure decision (over an injected clock): the local date whose digest is
due now, or None. A local day has one digest whatever the clocks do: the day is the key of the
store's ``digests`` row that a scheduler claims before sending (exactly once across
schedulers; a claim whose holder died is taken over after its lease). A time skipped by a DST
change (02:30 on the spring-forward day) fires at the same instant of the wall clock moved
forward (03:30); a repeated time (the fall-back hour) fires at its first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dockyard.alert import MAX_ITEMS, Alert, AlertItem, AlertKind, Severity, first_lines
from dockyard.domain import RunStatus

GRACE = timedelta(hours=6)  # a scheduler down at the digest's time still sends it this much later
SLOWEST = 5
WINDOW = timedelta(hours=24)


def fire_instant(day: date, at: str, timezone: str) -> datetime:
    """The instant of ``at`` (HH:MM) on the local date ``day`` (see the module doc for DST)."""
    hours, minutes = (int(p) for p in at.split(":"))
    tz = ZoneInfo(timezone)
    local = datetime.combine(day, time(hours, minutes), tzinfo=tz)
    # fold=0: a time in a DST gap takes the offset before the change (it lands on the wall
    # clock moved forward), a repeated time its first occurrence
    return local.astimezone(ZoneInfo("UTC"))


def due_day(now: datetime, at: str, timezone: str, grace: timedelta = GRACE) -> str | None:
    """The local date (``YYYY-MM-DD``) whose digest is due at ``now``, or None."""
    local_day = now.astimezone(ZoneInfo(timezone)).date()
    for day in (local_day, local_day - timedelta(days=1)):  # just after midnight: yesterday's late one
        fire = fire_instant(day, at, timezone)
        if fire <= now < fire + grace:
            return day.isoformat()
    return None


def build(app, day: str, now: datetime) -> Alert:
    """The digest alert of local date ``day`` over the 24 hours before ``now``."""
    config = app.config.metrics.digest
    envs = set(config.environments) if config.environments else None
    since = now - WINDOW
    rows = [r for r in app.store.reader.metrics.run_rows(since=since) if envs is None or r.environment in envs]
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    failed = [r for r in rows if r.status == RunStatus.ERROR.value]
    longest: dict[str, dict] = {}  # per model, its longest execution in the window
    for n in app.store.reader.metrics.node_rows(since=since, resource_types=("model",)):
        if n.execution_time_s is None or (envs is not None and n.environment not in envs):
            continue
        if n.unique_id not in longest or n.execution_time_s > longest[n.unique_id]["max_s"]:
            longest[n.unique_id] = {"unique_id": n.unique_id, "name": n.name, "max_s": float(n.execution_time_s)}
    slowest = sorted(longest.values(), key=lambda m: (-m["max_s"], m["unique_id"]))[:SLOWEST]
    stale = []
    service = getattr(app, "freshness", None)
    if service is not None and hasattr(service, "stale"):
        stale = [s for s in service.stale() if envs is None or s.get("environment") in envs]
    items: list[AlertItem] = []
    items += [
        AlertItem(name=f"{r.job_name} ({r.environment})", status="failed", message=f"run {r.id}") for r in failed[:10]
    ]
    items += [
        AlertItem(name=m["name"], status="slow", message=f"{m['max_s']:.1f} s", unique_id=m["unique_id"])
        for m in slowest
    ]
    items += [
        AlertItem(
            name=str(s.get("source") or s.get("unique_id")),
            status=str(s.get("status")),
            message=first_lines(s.get("age_now") and f"{s.get('age_now')} old"),
            unique_id=s.get("unique_id"),
        )
        for s in stale
    ]
    total = len(rows)
    ok = by_status.get(RunStatus.SUCCESS.value, 0)
    text = (
        f"{total} runs in the last 24 hours: {ok} succeeded, {len(failed)} failed, "
        f"{by_status.get(RunStatus.CANCELLED.value, 0)} cancelled; {len(stale)} stale sources."
    )
    base = getattr(app.config.server, "public_url", None)
    return Alert(
        kind=AlertKind.DIGEST,
        event="digest",
        subject=f"digest:{day}",
        key=f"digest:{day}",
        title=f"dockyard daily digest, {day}",
        severity=Severity.INFO,
        text=text,
        facts=(
            ("Runs", str(total)),
            ("Succeeded", str(ok)),
            ("Failed", str(len(failed))),
            ("Stale sources", str(len(stale))),
        ),
        items=tuple(items[:MAX_ITEMS]),
        items_total=len(failed) + len(slowest) + len(stale),
        url=base.rstrip("/") if base else None,
        created_at=now,
    )
