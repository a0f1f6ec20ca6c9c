"""Sending queued alert deliveries through their channels (``app.alerts.send_pending``).

A :class:`Sender` claims due ``pending`` rows of the ``notifications`` table (a lease per
row, taken by compare-and-set: several schedulers never send one row at once) and sends each
through :func:`dockyard.channels.send` in a thread of its own, at most :data:`SLOTS` at a time.
Every exchange is bounded by ``alerts.timeout_seconds`` (the channel's own timeout); a call
that overruns keeps its slot until it returns, its lease runs out and another pass may take
the row over. Nothing waits for a slow channel but its own slot: a hanging channel never
delays a run, another channel or the scheduler's tick.

An attempt that fails with a retryable error (a 429 or 5xx, a timeout, a refused connection)
is tried again after ``alerts.backoff_seconds`` doubled per failure (or the ``Retry-After``
asked for), up to ``alerts.max_attempts``; any other failure is final (``failed``). Secret
references (``env:NAME``, ``file:PATH``) are resolved here, at send time only; errors are
scrubbed of the resolved values before they are stored or logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import timedelta

from dockyard import clock
from dockyard.alert import Alert
from dockyard.errors import DockyardError
from dockyard.secrets import Scrubber, UnreadableSecret, is_reference, read_reference
from dockyard.store.notifications import Delivery

log = logging.getLogger("dockyard.app.alerts")
SLOTS = 8  # deliveries in flight at once, per process
MAX_BACKOFF_S = 3600.0


class SecretError(DockyardError):
    """A channel's secret reference cannot be resolved (not retried)."""


def resolve_secret(value: str, seen: list[str] | None = None) -> str:
    """The value behind ``env:NAME`` or ``file:PATH``; a literal is returned as it is.
    Each value resolved is appended to ``seen`` (to scrub errors with)."""
    try:
        out = read_reference(value, allow_empty=True) if is_reference(value) else value
    except UnreadableSecret as exc:
        raise SecretError(f"the secret {exc.problem}", hint=exc.hint) from None
    if seen is not None and out:
        seen.append(out)
    return out


def backoff(attempts: int, base_s: float, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    wait = base_s * (2 ** max(0, attempts - 1))
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, MAX_BACKOFF_S)


class Sender:
    """Sends due deliveries in threads (see the module doc); one per App, thread-safe."""

    def __init__(self, app):
        self.app = app
        self.base = f"{os.uname().nodename}:{os.getpid()}:alerts"
        self._lock = threading.Lock()
        self._flying: dict[int, threading.Thread] = {}

    def in_flight(self, run_id: int | None = None) -> int:
        with self._lock:
            return len(self._flying)

    def start_due(self, *, run_id: int | None = None) -> int:
        """Claim due deliveries (of ``run_id``) for the free slots and start sending them."""
        with self._lock:
            for key in [k for k, t in self._flying.items() if not t.is_alive()]:
                del self._flying[key]
            free = SLOTS - len(self._flying)
        if free <= 0:
            return 0
        alerts = self.app.config.alerts
        holder = f"{self.base}:{uuid.uuid4().hex[:8]}"
        lease = 2 * alerts.timeout_seconds + 10
        claimed = self.app.store.notifications.claim(holder, lease, limit=free, run_id=run_id)
        for delivery in claimed:
            thread = threading.Thread(
                target=self._send, args=(delivery, holder), name=f"alert-{delivery.channel}", daemon=True
            )
            with self._lock:
                self._flying[delivery.id] = thread
            thread.start()
        return len(claimed)

    def wait(self, deadline: float) -> None:
        """Until every delivery in flight has returned or ``deadline`` (time.monotonic())."""
        with self._lock:
            threads = list(self._flying.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _send(self, delivery: Delivery, holder: str) -> None:
        alerts = self.app.config.alerts
        seen: list[str] = []
        try:
            channel = self.app.alerts.channel(delivery.channel)
            result = self.send_now(channel, Alert.from_dict(delivery.alert), seen)
        except Exception as exc:  # noqa: BLE001 - a channel's failure is recorded, never raised
            retryable = bool(getattr(exc, "retryable", not isinstance(exc, DockyardError)))
            error = Scrubber(seen).scrub(_describe(exc))
            retry_at = None
            if retryable and delivery.attempts < alerts.max_attempts:
                wait = backoff(delivery.attempts, alerts.backoff_seconds, getattr(exc, "retry_after", None))
                retry_at = clock.now() + timedelta(seconds=wait)
            self._store(lambda: self.app.store.notifications.failed(delivery.id, holder, error, retry_at))
            log.warning(
                "alert %s to %s: attempt %s failed%s: %s",
                delivery.alert_key,
                delivery.channel,
                delivery.attempts,
                f", next in {(retry_at - clock.now()).total_seconds():.1f} s" if retry_at else " for good",
                error,
            )
            return
        result = Scrubber(seen).scrub(str(result or "ok"))
        self._store(lambda: self.app.store.notifications.sent(delivery.id, holder, result))
        log.info("alert %s sent to %s (%s): %s", delivery.alert_key, delivery.channel, delivery.channel_type, result)

    def send_now(self, channel, alert: Alert, seen: list[str] | None = None) -> str:
        """Send ``alert`` through ``channel`` now (a delivery, ``dockyard notify test``);
        raises the channel's error."""
        from dockyard import channels

        alerts, server = self.app.config.alerts, self.app.config.server
        seen = [] if seen is None else seen
        return channels.send(
            channel.notification,
            alert,
            resolve_secret=lambda value: resolve_secret(value, seen),
            account_id=server.account_id,
            timeout=alerts.timeout_seconds,
            allow_hosts=list(alerts.allow_hosts),
            smtp_default=alerts.smtp,
            name=channel.name,
        )

    @staticmethod
    def _store(write) -> None:
        try:
            write()
        except DockyardError as exc:
            log.warning("alert delivery not recorded: %s", exc.what)


def _describe(exc: BaseException) -> str:
    what = getattr(exc, "what", None) or str(exc) or type(exc).__name__
    return what if isinstance(exc, DockyardError) else f"{type(exc).__name__}: {what}"
