"""Anomaly scoring of monitor series (docs/monitors.md, "Anomaly scoring").

:func:`score` judges one new value of a series (a volume monitor's row counts) against the
points measured **before** it, never against itself: Elementary's expanding window includes
the point being judged, which caps the reachable z-score at (n-1)/√n. The rest fixes what its
users ask for:

* a robust score: ``z = 0.6745 · (x - median) / MAD`` over the training points (the MAD has a
  floor, so a constant series still scores a change);
* a minimum training size: with fewer usable points the state is ``warming_up``, visibly,
  instead of a silent pass;
* points flagged before are left out of training (an incident does not widen the band for
  the next five weeks), unless the latest ``min_training_points`` points were all flagged
  (the series moved to a new level and is learnt again from there) or, with seasonality,
  their weekday has too few other points (a weekday flagged week after week is a pattern);
* floors: an anomaly also needs ``|x - expected| ≥ min_absolute_change`` and
  ``≥ min_relative_change · |expected|``, so a 12-row table going to 15 stays quiet;
* a linear trend (Theil-Sen: the median of pairwise slopes) is taken out before comparing, so
  a growing table is compared with where it should be today;
* day-of-week seasonality: the expected value is the median of the same weekday's points
  once :data:`MIN_SEASONAL_POINTS` exist (else of all points, and until then the band also
  covers every value seen in training: a first weekend dip is not an incident); the spread
  is the MAD of every training point against its own weekday's median without it
  (leave-one-out);
* a stall: the value repeating for longer than the training series ever makes likely (a
  count that stops changing), and a table that empties (0 where every training point was
  above 0), are anomalies whatever the floors.

Pure and stdlib only: the store and the warehouse are the caller's (:mod:`dockyard.app.monitors`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MAD_TO_SIGMA = 0.6745  # MAD = 0.6745 σ for normal data: z = 0.6745 (x - median) / MAD
MIN_SEASONAL_POINTS = 3  # same-weekday points needed before the weekday's median is used
MAD_FLOOR_FRACTION = 0.005  # the MAD is at least 0.5 % of the expected value...
MAD_FLOOR = 1e-9  # ... and never 0
MAX_TREND_POINTS = 120  # the trend is fitted on at most this many recent training points
STALL_ALPHA = 0.002  # a run of repeats less likely than this (from training) is a stall

STATES = ("ok", "anomaly", "warming_up")


@dataclass(frozen=True)
class Point:
    """One earlier measurement: when, its value, and whether it was flagged anomalous then."""

    at: datetime
    value: float
    flagged: bool = False


@dataclass(frozen=True)
class Settings:
    sensitivity: float = 3.5  # |z| at or above which a point is anomalous
    min_training_points: int = 7
    training_days: float = 35.0
    min_absolute_change: float = 100.0
    min_relative_change: float = 0.1
    seasonality: str = "day_of_week"  # none | day_of_week
    direction: str = "both"  # both | spike | drop
    detect_stalls: bool = True


@dataclass(frozen=True)
class Score:
    state: str  # ok | anomaly | warming_up
    score: float | None  # the robust z (None while warming up)
    expected: float | None  # the median the value was compared with (trend and weekday applied)
    lower: float | None  # the band: values inside it are not anomalous
    upper: float | None
    training_size: int
    reason: str | None = None  # spike | drop | stall | empty (when anomalous)
    seasonal: bool = False  # the weekday's points gave the expected value
    relearned: bool = False  # training restarted at a level shift


def _mad(values: Sequence[float], center: float | None = None) -> float:
    c = statistics.median(values) if center is None else center
    return statistics.median(abs(v - c) for v in values)


def _days(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 86400.0


def trend_slope(points: Sequence[Point], *, weekly: bool = False) -> float:
    """Theil-Sen slope of ``points`` (value per day): the median of the pairwise slopes;
    ``weekly``: of the pairs on the same weekday only (a weekend dip is no trend), 0 when the
    points span less than a week."""
    recent = list(points)[-MAX_TREND_POINTS:]
    slopes = []
    for i, p in enumerate(recent):
        for q in recent[i + 1 :]:
            dt = _days(q.at, p.at)
            if dt > 1e-6 and (not weekly or (q.at.weekday() == p.at.weekday() and dt > 3)):
                slopes.append((q.value - p.value) / dt)
    return statistics.median(slopes) if slopes else 0.0


def training_set(at: datetime, history: Sequence[Point], settings: Settings) -> tuple[list[Point], bool]:
    """The points ``at`` is judged against: before it, within ``training_days``, not flagged;
    True as second item when a trailing run of flagged points became the new normal."""
    since = at - timedelta(days=settings.training_days)
    prior = sorted((p for p in history if since <= p.at < at), key=lambda p: p.at)
    trailing = 0
    for p in reversed(prior):
        if not p.flagged:
            break
        trailing += 1
    if trailing >= max(settings.min_training_points, 1):
        return prior[-trailing:], True  # a level shift: learn the new level
    kept = [p for p in prior if not p.flagged]
    if settings.seasonality == "day_of_week":  # a weekday flagged again and again is a pattern
        days = [p.at.weekday() for p in kept]
        thin = {d for d in range(7) if days.count(d) < MIN_SEASONAL_POINTS}
        kept = [p for p in prior if not p.flagged or p.at.weekday() in thin]
    return kept, False


def _stall(value: float, at: datetime, history: Sequence[Point], training: Sequence[Point]) -> bool:
    """True when ``value`` repeats the previous values for a run that the training series
    (how often a value repeated the one before) makes less likely than :data:`STALL_ALPHA`."""
    prior = sorted((p for p in history if p.at < at), key=lambda p: p.at)
    run = 0
    for p in reversed(prior):
        if p.value != value:
            break
        run += 1
    if run == 0 or len(training) < 2:
        return False
    pairs = list(zip(training, training[1:], strict=False))
    repeats = sum(1 for a, b in pairs if a.value == b.value)
    p_repeat = (repeats + 1) / (len(pairs) + 2)  # Laplace: never 0 or 1
    return p_repeat**run < STALL_ALPHA


GROWING_SHARE = 0.9  # an append-only table: at least this share of its steps do not shrink


def _growing(training: Sequence[Point]) -> bool:
    steps = [b.value - a.value for a, b in zip(training, training[1:], strict=False)]
    return len(steps) >= 2 and sum(d >= 0 for d in steps) >= GROWING_SHARE * len(steps) and statistics.median(steps) > 0


def _rates(training: Sequence[Point], prior: Sequence[Point]) -> list[Point]:
    """An append-only table's training as rows added a day, each point against the last
    unflagged point before it (so the day after an incident is not one)."""
    out, base = [], None
    usable = {id(p) for p in training}
    for p in prior:
        if base is not None and id(p) in usable:
            dt = _days(p.at, base.at)
            if dt > 1e-6:
                out.append(Point(p.at, (p.value - base.value) / dt))
        if not p.flagged or id(p) in usable:
            base = p
    return out


def _band(value: float, at: datetime, training: Sequence[Point], s: Settings, floor: float):
    """``(expected, lower, upper, z, seasonal)`` of ``value`` against ``training``; ``floor``:
    the absolute floor in the training's units."""
    slope = trend_slope(training, weekly=s.seasonality == "day_of_week")
    detrended = [(p.at, p.value - slope * _days(p.at, at)) for p in training]
    groups: dict[int, list[float]] = {}
    for t, v in detrended:
        groups.setdefault(t.weekday(), []).append(v)
    values = [v for _, v in detrended]
    overall = statistics.median(values)
    same_day = groups.get(at.weekday(), [])
    seasonal = s.seasonality == "day_of_week" and len(same_day) >= MIN_SEASONAL_POINTS
    expected = statistics.median(same_day) if seasonal else overall
    residuals = []
    for t, v in detrended:
        group = groups[t.weekday()]
        if s.seasonality == "day_of_week" and len(group) > MIN_SEASONAL_POINTS:
            others = list(group)
            others.remove(v)
            residuals.append(v - statistics.median(others))
        else:
            residuals.append(v - overall)
    mad = max(_mad(residuals, 0.0), MAD_FLOOR_FRACTION * abs(expected), MAD_FLOOR)
    # a prediction, not a confidence band: the median of k points is itself off by about
    # sqrt(pi / 2k) sigma, which a new point's deviation adds to its own
    mad *= math.sqrt(1 + math.pi / (2 * len(same_day if seasonal else values)))
    z = MAD_TO_SIGMA * (value - expected) / mad
    half = max(s.sensitivity * mad / MAD_TO_SIGMA, floor, s.min_relative_change * abs(expected))
    lower, upper = expected - half, expected + half
    if s.seasonality == "day_of_week" and not seasonal:  # the weekly pattern is not learnt yet:
        lower, upper = min(lower, min(values) - half), max(upper, max(values) + half)  # seen is normal
    return expected, lower, upper, z, seasonal


def score(value: float, at: datetime, history: Sequence[Point], settings: Settings | None = None) -> Score:
    """Judge ``value`` measured at ``at`` against the earlier points of ``history``.

    An append-only table (:data:`GROWING_SHARE` of its training steps do not shrink) is
    judged on the rows it added a day since the last unflagged point, not on its total (a
    10 % floor of the total would hide a day that loaded nothing); the answer is given in
    rows all the same (the band is where the total should be now)."""
    s = settings or Settings()
    training, relearned = training_set(at, history, s)
    n = len(training)
    if n < max(s.min_training_points, 2):
        return Score("warming_up", None, None, None, None, n, relearned=relearned)
    if _growing(training):
        since = at - timedelta(days=s.training_days)
        prior = sorted((p for p in history if since <= p.at < at), key=lambda p: p.at)
        base = next((p for p in reversed(prior) if not p.flagged or p in training), prior[-1])
        dt = max(_days(at, base.at), 1e-6)
        rates = _rates(training, prior)
        expected, lower, upper, z, seasonal = _band((value - base.value) / dt, at, rates, s, s.min_absolute_change / dt)
        expected, lower, upper = (base.value + r * dt for r in (expected, lower, upper))
    else:
        expected, lower, upper, z, seasonal = _band(value, at, training, s, s.min_absolute_change)
    reason = None
    if value > upper and s.direction in ("both", "spike"):
        reason = "spike"
    elif value < lower and s.direction in ("both", "drop"):
        reason = "drop"
    elif value == 0 and all(p.value > 0 for p in training) and s.direction in ("both", "drop"):
        reason = "empty"
    elif s.detect_stalls and _stall(value, at, history, training):
        reason = "stall"
    return Score(
        "anomaly" if reason else "ok",
        round(z, 4),
        expected,
        lower,
        upper,
        n,
        reason=reason,
        seasonal=seasonal,
        relearned=relearned,
    )
