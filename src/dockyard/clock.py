"""The only place that reads the wall clock; tests patch :func:`now`."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
