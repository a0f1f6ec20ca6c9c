"""Pure scheduling decisions over an injected clock: DST in two zones, misfire policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dockyard.schedule import next_fire_times
from dockyard.server.scheduler import Upstream, completion_fires, due_fires, fire_key


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def walk(cron: str, tz: str, start: datetime, end: datetime, step_s: int = 20) -> list[datetime]:
    """Drive due_fires like a scheduler ticking every ``step_s`` seconds."""
    fired, last, now = [], start, start
    while now < end:
        now += timedelta(seconds=step_s)
        fires, last = due_fires(cron, tz, last, now)
        fired += fires
    return fired


@pytest.mark.parametrize(
    "tz, night, expected",
    [
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT
        (
            "America/New_York",
            utc(2026, 3, 8, 4),
            [
                utc(2026, 3, 8, 4, 30),
                utc(2026, 3, 8, 5, 30),
                utc(2026, 3, 8, 6, 30),
                utc(2026, 3, 8, 7, 30),
                utc(2026, 3, 8, 8, 30),
            ],
        ),
        # Paris springs forward 2026-03-29 02:00 CET -> 03:00 CEST
        (
            "Europe/Paris",
            utc(2026, 3, 28, 23),
            [
                utc(2026, 3, 28, 23, 30),
                utc(2026, 3, 29, 0, 30),
                utc(2026, 3, 29, 1, 30),
                utc(2026, 3, 29, 2, 30),
                utc(2026, 3, 29, 3, 30),
            ],
        ),
    ],
)
def test_spring_forward_hourly(tz, night, expected):
    # 02:30 local does not exist: it fires at 03:30 (the jump), once, and 03:30 is not doubled;
    # 4 h 45 of wall time hold 5 fires, not 6
    fired = walk("30 * * * *", tz, night, night + timedelta(hours=4, minutes=45))
    assert fired == expected


@pytest.mark.parametrize(
    "tz, start, skipped_day_fire",
    [
        ("America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 8, 7, 30)),  # 02:30 -> 03:30 EDT = 07:30Z
        ("Europe/Paris", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 30)),  # 02:30 -> 03:30 CEST = 01:30Z
    ],
)
def test_spring_forward_daily_in_the_gap_fires_once(tz, start, skipped_day_fire):
    fired = walk("30 2 * * *", tz, start, start + timedelta(days=2), step_s=300)
    assert len(fired) == 2 and skipped_day_fire in fired


@pytest.mark.parametrize(
    "tz, start, first, second",
    [
        # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice
        ("America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)),
        # Paris falls back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice
        ("Europe/Paris", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
    ],
)
def test_fall_back_repeated_hour_fires_once_at_first_occurrence(tz, start, first, second):
    cron = "30 1 * * *" if tz == "America/New_York" else "30 2 * * *"
    fired = walk(cron, tz, start, start + timedelta(days=1, hours=6), step_s=300)
    assert fired == [first]
    assert second not in fired


def test_fall_back_hourly_has_no_duplicates_and_no_extra():
    start = utc(2026, 11, 1, 3)
    fired = walk("0 * * * *", "America/New_York", start, start + timedelta(hours=6))
    assert len(fired) == len(set(fired))
    # 00:00 EDT, 01:00 EDT, (01:00 EST is the repeated wall time: skipped), 02:00 EST, ...
    assert utc(2026, 11, 1, 5) in fired and utc(2026, 11, 1, 6) not in fired and utc(2026, 11, 1, 7) in fired


def test_first_sight_fires_nothing_from_the_past():
    fires, last = due_fires("* * * * *", "UTC", None, utc(2026, 1, 1, 12))
    assert fires == [] and last == utc(2026, 1, 1, 12)


def test_on_time_tick_fires_each_minute_once():
    fired = walk("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 0, 10), step_s=7)
    assert fired == [utc(2026, 1, 1, 0, m) for m in range(1, 11)]


DOWN_FROM = utc(2026, 5, 1, 0, 0, 30)
BACK_AT = utc(2026, 5, 1, 5, 10)  # five hours down: fires at 01:00..05:00 missed


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("latest", [utc(2026, 5, 1, 5)]),
        ("none", []),
        ("all", [utc(2026, 5, 1, h) for h in range(1, 6)]),
    ],
)
def test_misfire_policies_after_downtime(policy, expected):
    fires, last = due_fires("0 * * * *", "UTC", DOWN_FROM, BACK_AT, policy=policy)
    assert fires == expected and last == BACK_AT


def test_misfire_window_limits_catch_up():
    fires, _ = due_fires("0 * * * *", "UTC", DOWN_FROM, BACK_AT, policy="all", window_s=2.5 * 3600)
    assert fires == [utc(2026, 5, 1, 3), utc(2026, 5, 1, 4), utc(2026, 5, 1, 5)]


def test_none_policy_still_fires_a_slightly_late_tick():
    fires, _ = due_fires("0 * * * *", "UTC", utc(2026, 5, 1, 4, 59, 50), utc(2026, 5, 1, 5, 0, 40), policy="none")
    assert fires == [utc(2026, 5, 1, 5)]


def test_fire_keys_are_stable_utc():
    assert fire_key(utc(2026, 3, 8, 7, 30)) == "cron:2026-03-08T07:30:00Z"
    nxt = next_fire_times("0 2 * * *", "America/New_York", utc(2026, 1, 1), 1)[0]
    assert fire_key(nxt) == "cron:2026-01-01T07:00:00Z"


def test_completion_any_and_all():
    t = utc(2026, 1, 1)
    latest = {
        "A": [Upstream("A", 5, "success", t), Upstream("A", 3, "error", t)],
        "B": [Upstream("B", 4, "success", t)],
    }
    assert completion_fires("any", ["success"], ["A", "B"], latest, None) == ["after:5", "after:4"]
    assert completion_fires("all", ["success"], ["A", "B"], latest, None) == ["after:4,5"]
    assert completion_fires("all", ["success"], ["A", "B"], {"A": latest["A"]}, None) == []
    assert completion_fires("all", ["error"], ["A"], latest, None) == ["after:3"]
