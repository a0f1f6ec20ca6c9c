"""Anomaly scoring (dockyard.anomaly): prior points only, warming up, floors, seasonality, the
MAD floor, flagged points left out of training, stalls; and the benchmark's targets."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.anomaly import Point, Settings, score

MONDAY = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def series(values, start=MONDAY, flagged=()):
    return [Point(start + timedelta(days=i), float(v), flagged=i in flagged) for i, v in enumerate(values)]


def at(i: int) -> datetime:
    return MONDAY + timedelta(days=i)


NOISY = [1000, 1040, 980, 1010, 995, 1025, 970, 1005, 1030, 990, 1015, 985, 1020, 1000]


def test_warming_up_until_the_minimum_training_size():
    history = series(NOISY[:6])
    result = score(5000, at(6), history)
    assert result.state == "warming_up" and result.score is None and result.training_size == 6
    assert score(5000, at(7), series(NOISY[:7])).state == "anomaly"


def test_only_prior_points_train_later_points_and_the_point_itself_do_not():
    history = series(NOISY)
    later = [Point(at(20 + i), 1e9) for i in range(10)]  # after the judged point: ignored
    alone = score(1800, at(14), history)
    assert alone == score(1800, at(14), history + later)
    # the judged value never dilutes its own score: a single extreme point is flagged at n=7
    assert score(1800, at(7), series(NOISY[:7])).state == "anomaly"


def test_median_and_band_and_score():
    result = score(1005, at(14), series(NOISY))
    assert result.state == "ok" and abs(result.expected - 1005) < 30
    assert result.lower < 1005 < result.upper and result.training_size == 14
    drop = score(500, at(14), series(NOISY))
    assert drop.state == "anomaly" and drop.reason == "drop" and drop.score < -3.5


def test_absolute_and_relative_floors_silence_small_changes():
    small = [20, 21, 19, 20, 20, 21, 19, 20, 21, 19, 20, 20, 21, 19]
    # 19..21 rows: 30 rows is a huge z but below the 100-row floor
    assert score(30, at(14), series(small)).state == "ok"
    assert score(30, at(14), series(small), Settings(min_absolute_change=0, min_relative_change=0)).state == "anomaly"
    big = [100_000 + (i % 3) for i in range(14)]
    # +5 % of a 100k table: beyond the absolute floor, within the 10 % relative floor
    assert score(105_000, at(14), series(big)).state == "ok"
    assert score(115_000, at(14), series(big)).state == "anomaly"


def test_mad_zero_has_a_floor():
    flat = [5000] * 14
    result = score(5000, at(14), series(flat), Settings(detect_stalls=False))
    assert result.state == "ok" and result.score == 0 and result.upper > result.lower
    spike = score(7000, at(14), series(flat))
    assert spike.state == "anomaly" and spike.reason == "spike" and spike.score < float("inf")


def test_previously_flagged_points_are_left_out_of_training():
    values = [1000, 1010, 990, 1005, 995, 1000, 1008, 5000, 5100, 1002, 997, 1003]
    flat = Settings(seasonality="none")
    clean = score(1600, at(12), series(values, flagged={7, 8}), flat)
    dirty = score(1600, at(12), series(values), flat)
    assert clean.training_size == 10 and dirty.training_size == 12
    assert clean.upper < dirty.upper


def test_a_level_shift_is_learnt_after_min_training_points_flagged_points():
    values = [1000] * 10 + [3000 + i for i in range(7)]
    result = score(3003, at(17), series(values, flagged=set(range(10, 17))), Settings(detect_stalls=False))
    assert result.relearned and result.state == "ok" and result.training_size == 7


def weekly(weeks: int, weekday=1000, weekend=400):
    return [(weekend if (i % 7) >= 5 else weekday) + (i * 7919 % 13) for i in range(weeks * 7)]


def test_day_of_week_seasonality():
    history = series(weekly(4))
    saturday = 4 * 7 + 5
    assert at(saturday).weekday() == 5
    season = score(405, at(saturday), history)
    assert season.state == "ok" and season.seasonal and abs(season.expected - 405) < 20
    flat = score(405, at(saturday), history, Settings(seasonality="none"))
    assert not flat.seasonal and flat.state == "anomaly"
    # a weekday at the weekend level is a drop once the weekday is learnt
    assert score(405, at(4 * 7 + 2), history).reason == "drop"


def test_seasonality_waits_for_three_same_weekday_points():
    history = series(weekly(2))  # two points per weekday
    result = score(405, at(14 + 5), history)
    assert not result.seasonal and result.state == "ok"  # a weekend level seen before is normal


def test_stall_and_empty():
    values = [1000 + (i * 37 % 50) for i in range(30)]
    history = series(values + [values[-1], values[-1]])
    stalled = score(values[-1], at(32), history)
    assert stalled.state == "anomaly" and stalled.reason == "stall"
    assert score(0, at(20), series([30 + i % 5 for i in range(20)])).reason == "empty"


def test_growing_table_is_judged_on_rows_added():
    totals = [100_000 + 1000 * i + (i * 31 % 60) for i in range(21)]
    ok = score(totals[-1] + 1000, at(21), series(totals))
    assert ok.state == "ok" and abs(ok.expected - (totals[-1] + 1000)) < 200
    nothing_loaded = score(totals[-1] + 20, at(21), series(totals), Settings(detect_stalls=False))
    assert nothing_loaded.state == "anomaly" and nothing_loaded.reason == "drop"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=0, max_size=40),
    st.floats(min_value=0, max_value=1e7, allow_nan=False),
)
def test_any_series_scores_to_a_consistent_answer(values, value):
    result = score(value, at(len(values)), series(values))
    assert result.state in ("ok", "anomaly", "warming_up")
    if result.state != "warming_up":
        assert result.lower <= result.expected <= result.upper
        assert result.training_size >= 7
        if result.state == "ok":
            assert result.reason is None and result.lower <= value <= result.upper
        else:
            assert result.reason in ("spike", "drop", "stall", "empty")


def test_benchmark_meets_its_targets_on_a_fixed_seed_set():
    spec = importlib.util.spec_from_file_location("monitors_anomaly", ROOT / "bench" / "monitors_anomaly.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["monitors_anomaly"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    result = bench.evaluate(range(45))
    assert result["precision"] >= 0.9 and result["recall"] >= 0.8, result
