"""The only place that reads the wall clock; tests patch :func:`now`.

For multi-process tests of the scheduler, ``DOCKYARD_CLOCK_WARP="2026-01-01T00:00:00Z*600"``
makes every process's clock start at that instant when the process starts and run 600
times faster than real time (all processes started with the same value agree, up to their
start skew times the speed). Never set it in production.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta


def _warp() -> tuple[datetime, float, float] | None:
    spec = os.environ.get("DOCKYARD_CLOCK_WARP")
    if not spec:
        return None
    start, _, speed = spec.partition("*")
    origin = float(os.environ.get("DOCKYARD_CLOCK_ORIGIN", time.time()))
    return datetime.fromisoformat(start.replace("Z", "+00:00")), float(speed or 1), origin


_WARP = _warp()


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    if _WARP is None:
        return datetime.now(UTC)
    start, speed, origin = _WARP
    return start + timedelta(seconds=(time.time() - origin) * speed)


def sleep_scale() -> float:
    """Real seconds per clock second (1 without a warp)."""
    return 1.0 / _WARP[1] if _WARP else 1.0
