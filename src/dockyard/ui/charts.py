"""Server-rendered SVG charts (no JavaScript, no inline style: CSP-clean): a sparkline of a
job's recent durations and a duration trend with axes. Each returns the numbers a template
draws (points as "x,y" strings), so the template escapes nothing it did not compute."""

from __future__ import annotations

from dataclasses import dataclass, field

BAD = ("error", "cancelled")


@dataclass
class Chart:
    width: int
    height: int
    points: str = ""  # the polyline's "x,y x,y ..."
    marks: list[tuple[float, float, int, str, float]] = field(default_factory=list)  # x, y, run id, status, seconds
    max_s: float = 0.0
    min_s: float = 0.0
    pad: int = 0


def _scale(values: list[float], width: int, height: int, pad: int) -> tuple[list[tuple[float, float]], float, float]:
    top, low = max(values), min(values)
    span = (top - low) or (top or 1.0)
    base = low if top != low else 0.0
    n = len(values)
    xs = [pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    ys = [height - pad - (height - 2 * pad) * ((v - base) / span) for v in values]
    return list(zip(xs, ys, strict=True)), top, low


def sparkline(durations: list[tuple[int, float, str]], width: int = 120, height: int = 28) -> Chart | None:
    """``durations``: (run id, seconds, status), oldest first; None with fewer than two runs."""
    if len(durations) < 2:
        return None
    pts, top, low = _scale([d[1] for d in durations], width, height, 3)
    chart = Chart(width, height, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts), max_s=top, min_s=low, pad=3)
    chart.marks = [(x, y, d[0], d[2], d[1]) for (x, y), d in zip(pts, durations, strict=True) if d[2] in BAD]
    return chart


def trend(durations: list[tuple], width: int = 900, height: int = 220) -> Chart | None:
    """``durations``: (run id, seconds, status, ...), oldest first; every run marked."""
    if not durations:
        return None
    pts, top, low = _scale([d[1] for d in durations], width, height, 30)
    chart = Chart(width, height, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts), max_s=top, min_s=low, pad=30)
    chart.marks = [(x, y, d[0], d[2], d[1]) for (x, y), d in zip(pts, durations, strict=True)]
    return chart
