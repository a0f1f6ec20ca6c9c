"""Cron schedules in an IANA time zone: validation and fire times.

Cron expressions are evaluated on the *local wall clock* of the job's time zone, then
mapped to instants:

* a local time that does not exist (the hour skipped when clocks spring forward) fires
  at the same wall time shifted by the jump, e.g. 02:30 on a spring-forward night in
  New York fires at 03:30 EDT; if that instant is already a fire time it fires once;
* a local time that happens twice (the hour repeated when clocks fall back) fires once,
  at its first occurrence.

A schedule must fire within :data:`HORIZON_YEARS` years (``0 0 31 2 *``, February 31st,
never does): :func:`check_cron` refuses it. A stored schedule that cannot be computed
(stored before that check, or edited in the store) has no fires: :func:`safe_next_fires`
answers ``[]`` and logs why, so one bad job never breaks a list, a detail or health.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

log = logging.getLogger("dockyard.schedule")

HORIZON_YEARS = 10  # a schedule must fire within this many years (29 February does, in 8 at most)
MAX_CRON_LENGTH = 200  # the store's column


def check_cron(expr: str) -> str | None:
    """Return a message if ``expr`` is not a valid 5-field cron expression that fires within
    :data:`HORIZON_YEARS` years, else None."""
    if not isinstance(expr, str) or len(expr.split()) != 5:
        return "a cron expression has 5 fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'"
    if len(expr) > MAX_CRON_LENGTH:
        return f"a cron expression has at most {MAX_CRON_LENGTH} characters"
    if not croniter.is_valid(expr):
        return f"'{expr}' is not a valid cron expression"
    start = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    try:
        croniter(expr, start, max_years_between_matches=HORIZON_YEARS).get_next(datetime)
    except Exception:  # noqa: BLE001 - croniter raises several types for expressions it accepted
        return (
            f"'{expr}' never fires: no date matches it in the next {HORIZON_YEARS} years "
            "(e.g. the 31st of a 30-day month, or 30 February)"
        )
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


@lru_cache(maxsize=1024)
def _parsed(cron: str) -> croniter:
    return croniter(cron, datetime(2000, 1, 1))


def _iterator(cron: str, start: datetime) -> croniter:
    """A croniter from ``start`` (naive local time): a copy of the expression parsed once
    (parsing is most of what a croniter costs), so each caller iterates its own."""
    it = copy.copy(_parsed(cron))
    it.set_current(start, force=True)
    return it


def next_fire_times(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` fire instants (aware UTC) strictly after ``after``."""
    tz = ZoneInfo(timezone)
    local_after = after.astimezone(tz)
    # Start 3 hours back so that a skipped local time just before ``after`` (which fires
    # shifted by the jump, after ``after``) is seen; without a clock change in those 3 hours
    # no earlier local time can fire after ``after``, and starting there saves up to 180
    # croniter steps per call (a minutely cron).
    back = timedelta(hours=3)
    if (after - back).astimezone(tz).utcoffset() == local_after.utcoffset():
        back = timedelta(0)
    it = _iterator(cron, local_after.replace(tzinfo=None) - back)
    out: list[datetime] = []
    while len(out) < count:
        instant = _to_instant(it.get_next(datetime), tz)
        if instant <= after or (out and instant <= out[-1]):
            continue
        out.append(instant)
    return out


def safe_next_fires(
    cron: str | None, timezone: str, after: datetime, count: int = 1, *, job: object = "?"
) -> list[datetime]:
    """:func:`next_fire_times`, or ``[]`` (logged) when the stored schedule cannot be
    computed: no cron, a cron that never fires, an unknown time zone."""
    if not cron:
        return []
    try:
        return next_fire_times(cron, timezone, after, count)
    except Exception as exc:  # noqa: BLE001 - a stored schedule is not trusted to be computable
        log.warning("job %s: schedule %r (%s) has no next fire, ignored: %s", job, cron, timezone, exc)
        return []


def fire_times_between(cron: str, timezone: str, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
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
