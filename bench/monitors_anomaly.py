"""Precision and recall of dockyard's volume anomaly scoring on synthetic series.

Each series is one table's daily row count over ``--days`` days (default 120), of one of three
shapes, with noise and a random trend:

* ``steady``: a level of 2,000 to 50,000 rows with a weekly pattern (weekends 55-95 % of the
  weekday level), 1.5-4 % noise and a trend of -0.2 to +0.5 % a day;
* ``growing``: an append-only table (100,000 rows, then 500 to 5,000 rows a day with a weekly
  pattern and 15 % noise): the count is a cumulative sum;
* ``low``: a small table (5 to 60 rows, Poisson noise, weekly pattern), where changes of a few
  rows are noise.

Into each series 1 to 3 incidents are injected after day 30 (never overlapping):

* ``drop``: the count falls to 20-70 % of its value (steady), or loses 8-50 % of its rows
  (growing), for 1 to 3 days; a ``low`` table empties (0 rows);
* ``spike``: 1.6-3x the count for 1 or 2 days (steady), or 3-10 days' worth of rows loaded
  twice (growing); not injected into ``low`` tables;
* ``stall``: the count stops changing (repeats the last value) for 3 to 6 days.

Every point is scored in order with :func:`dockyard.anomaly.score` at the default settings
(the monitor's defaults), with the points flagged before excluded from training, as the
monitor does. Precision is per point: flagged points inside an incident over all flagged
points. Recall is per incident: an incident counts as found when one of its points is
flagged. Deterministic: the seeds are ``0 .. --series - 1``.

    .venv/bin/python bench/monitors_anomaly.py                # 300 series
    .venv/bin/python bench/monitors_anomaly.py --series 100 --json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dockyard.anomaly import Point, Settings, score  # noqa: E402

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # a Monday
KINDS = ("steady", "growing", "low")
INCIDENTS = ("drop", "spike", "stall")


@dataclass
class Series:
    kind: str
    values: list[float]
    incidents: list[tuple[str, int, int]] = field(default_factory=list)  # (type, first, last)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def make_series(seed: int, days: int = 120) -> Series:
    """One synthetic series with its incidents (deterministic for ``seed``)."""
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    weekend = rng.uniform(0.55, 0.95)
    week = [1.0] * 5 + [weekend, weekend * rng.uniform(0.9, 1.1)]
    clean: list[float] = []
    if kind == "steady":
        level, noise, trend = rng.uniform(2000, 50000), rng.uniform(0.015, 0.04), rng.uniform(-0.002, 0.005)
        clean = [round(level * (1 + trend) ** d * week[d % 7] * (1 + rng.gauss(0, noise))) for d in range(days)]
    elif kind == "growing":
        total, daily = 100_000.0, rng.uniform(500, 5000)
        adds = []
        for d in range(days):
            add = max(0.0, daily * week[d % 7] * (1 + rng.gauss(0, 0.15)))
            adds.append(add)
            total += add
            clean.append(round(total))
    else:
        level = rng.uniform(5, 60)
        clean = [float(_poisson(rng, level * week[d % 7])) for d in range(days)]
    values = list(clean)
    series = Series(kind, values)
    taken: set[int] = set()
    for _ in range(rng.randint(1, 3)):
        kinds = ("drop", "stall") if kind == "low" else INCIDENTS
        what = rng.choice(kinds)
        length = {"drop": rng.randint(1, 3), "spike": rng.randint(1, 2), "stall": rng.randint(3, 6)}[what]
        for _attempt in range(20):
            first = rng.randint(30, days - length - 1)
            span = set(range(first - 3, first + length + 4))
            if not span & taken:
                break
        else:
            continue
        last = first + length - 1
        taken |= span
        factor = rng.uniform(0.2, 0.7) if what == "drop" else rng.uniform(1.6, 3.0)
        for i in range(first, last + 1):
            if what == "stall":
                values[i] = values[first - 1]
            elif kind == "low":
                values[i] = 0.0
            elif kind == "growing" and what == "drop":
                values[i] = round(clean[i] * (1 - rng.uniform(0.08, 0.5)))
            elif kind == "growing":
                values[i] = round(clean[i] + (clean[i] - clean[i - 1]) * rng.uniform(3, 10))
            else:
                values[i] = round(clean[i] * factor)
        series.incidents.append((what, first, last))
    series.incidents.sort(key=lambda inc: inc[1])
    return series


def flags(series: Series, settings: Settings) -> list[str]:
    """Score every point in order (flagged points excluded from later training); the states."""
    history: list[Point] = []
    states = []
    for day, value in enumerate(series.values):
        at = START + timedelta(days=day)
        result = score(value, at, history, settings)
        states.append(result.state)
        history.append(Point(at, value, flagged=result.state == "anomaly"))
    return states


def evaluate(seeds, settings: Settings | None = None, days: int = 120) -> dict:
    """Precision (per point) and recall (per incident), overall and per incident type and
    table shape, over the series of ``seeds``."""
    settings = settings or Settings()
    tp = fp = 0
    found: dict[str, list[int]] = {w: [0, 0] for w in INCIDENTS}
    by_kind: dict[str, dict[str, int]] = {k: {"tp": 0, "fp": 0, "found": 0, "incidents": 0} for k in KINDS}
    warming = 0
    for seed in seeds:
        series = make_series(seed, days)
        states = flags(series, settings)
        inside = {i for _, a, b in series.incidents for i in range(a, b + 1)}
        warming += states.count("warming_up")
        for i, state in enumerate(states):
            if state == "anomaly":
                hit = i in inside
                tp += hit
                fp += not hit
                by_kind[series.kind]["tp" if hit else "fp"] += 1
        for what, a, b in series.incidents:
            hit = any(states[i] == "anomaly" for i in range(a, b + 1))
            found[what][0] += hit
            found[what][1] += 1
            by_kind[series.kind]["found"] += hit
            by_kind[series.kind]["incidents"] += 1
    incidents = sum(t for _, t in found.values())
    return {
        "series": len(list(seeds)),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": sum(f for f, _ in found.values()) / incidents if incidents else 1.0,
        "flagged": tp + fp,
        "false_positives": fp,
        "incidents": incidents,
        "warming_up_points": warming,
        "recall_by_type": {w: (f / t if t else None) for w, (f, t) in found.items()},
        "by_shape": {
            k: {
                "precision": (v["tp"] / (v["tp"] + v["fp"])) if v["tp"] + v["fp"] else None,
                "recall": (v["found"] / v["incidents"]) if v["incidents"] else None,
                "false_positives": v["fp"],
            }
            for k, v in by_kind.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    result = evaluate(range(args.series), days=args.days)
    result["seconds"] = round(time.monotonic() - started, 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['series']} series x {args.days} days, default settings ({result['seconds']} s)")
    print(f"precision {result['precision']:.3f}  recall {result['recall']:.3f}")
    print(f"flagged {result['flagged']} points, {result['false_positives']} false; {result['incidents']} incidents")
    for what, value in result["recall_by_type"].items():
        print(f"  recall {what:6s} {value:.3f}")
    for kind, v in result["by_shape"].items():
        p = "-" if v["precision"] is None else f"{v['precision']:.3f}"
        r = "-" if v["recall"] is None else f"{v['recall']:.3f}"
        print(f"  {kind:8s} precision {p}  recall {r}  false positives {v['false_positives']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
