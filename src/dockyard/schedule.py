"""Cron schedules in an IANA time zone: validation and fire times.

Cron expressions are evaluated on the *local wall clock* of the job's time zone, then
mapped to instants:

* a local time that does not exist (the hour skipped when clocks spring forward) fires
  at the same wall time shifted by the jump, e.g. 02:30 on a spring-forward night in
  New York fires at 03:30 EDT; if that instant is already a fire time it fires once;
* a local time that happens twice (the hour repeated when clocks fall back) fires once,
  at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter


def check_cron(expr: str) -> str | None:
    """Return a message if ``expr`` is not a valid 5-field cron expression, else None."""
    if not isinstance(expr, str) or len(expr.split()) != 5:
        return "a cron expression has 5 fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'"
    if not croniter.is_valid(expr):
        return f"'{expr}' is not a valid cron expression"
    return None


def check_timezone(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return f"'{name}' is not an IANA time zone (such as 'UTC' or 'America/New_York')"
    return None


def timezone_names() -> set[str]:
    return available_timezones()


def _to_instant(local_naive: datetime, tz: ZoneInfo) -> datetime:
    aware = local_naive.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC)


def next_fire_times(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` fire instants (aware UTC) strictly after ``after``."""
    tz = ZoneInfo(timezone)
    local_start = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    it = croniter(cron, local_start)
    out: list[datetime] = []
    while len(out) < count:
        instant = _to_instant(it.get_next(datetime), tz)
        if instant <= after or (out and instant <= out[-1]):
            continue
        out.append(instant)
    return out


def fire_times_between(cron: str, timezone: str, start: datetime, end: datetime,
                       limit: int = 10_000) -> list[datetime]:
    """Fire instants in ``(start, end]``, at most ``limit`` of them."""
    out: list[datetime] = []
    cursor = start
    while len(out) < limit:
        nxt = next_fire_times(cron, timezone, cursor, 1)[0]
        if nxt > end:
            break
        out.append(nxt)
        cursor = nxt
    return out
