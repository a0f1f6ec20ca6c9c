"""Store calls that outlive a dropped connection.

A PostgreSQL restart or a terminated backend makes the next statement on that connection
fail (:class:`~dockyard.errors.StoreError`); the pool replaces the connection on the next
checkout. The calls around a run (reading it, marking it running or final, queueing its
retry) are idempotent compare-and-sets, so the workers and the scheduler retry them for a
while instead of abandoning the run to the reaper. Fenced writes still fail at once with
:class:`~dockyard.errors.FencedError` (not a StoreError) when the lease is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from dockyard.errors import StoreError

log = logging.getLogger("dockyard.store")
T = TypeVar("T")


def persist(fn: Callable[[], T], *, timeout: float = 10.0, what: str = "store call") -> T:
    """``fn()``, retried with backoff (0.1 s doubling to 1 s) while it raises StoreError, for
    at most ``timeout`` seconds; then the last StoreError is raised."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            return fn()
        except StoreError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: store unreachable, retrying in %.1f s: %s", what, delay, exc.what)
            time.sleep(delay)
            delay = min(2 * delay, 1.0)


def persist_until(fn: Callable[[], T], stop: Callable[[], bool], *, what: str, max_delay: float = 5.0) -> T:
    """``fn()``, retried with backoff (0.5 s doubling to ``max_delay``) for as long as the store
    is unreachable, until ``stop()`` is true (then the last StoreError is raised). A scheduler
    or worker that starts while the store is down waits for it instead of exiting."""
    delay = 0.5
    while True:
        try:
            return fn()
        except StoreError as exc:
            if stop():
                raise
            log.warning("%s: store unreachable, retrying in %.1f s: %s", what, delay, exc.what)
            end = time.monotonic() + delay
            while time.monotonic() < end and not stop():
                time.sleep(0.1)
            delay = min(2 * delay, max_delay)
