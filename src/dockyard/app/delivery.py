"""Delivering the outbox to the event sinks: at least once, in order, one dispatcher per sink.

:class:`SinkDelivery` is one sink's delivery loop body: claim the sink's cursor (a lease
taken by compare-and-set, so two schedulers never deliver to one sink at the same time),
hand each event after the cursor to the sink (each call bounded by
``events.delivery_timeout_seconds``, in a thread of its own), move the cursor after each
delivered event, and on failure record the failure and back off (doubling up to
``events.max_backoff_seconds``; the backoff is kept in the cursor row, so it survives restarts
and is shared by every dispatcher). A crash between a delivery and the cursor's move delivers
that event again, with the same idempotency key.

The scheduler's ``DispatchEvents`` duty (``dockyard.server.duties``) runs one
:class:`SinkDelivery` per configured sink off the tick thread; a foreground ``dockyard run``
calls :func:`deliver_run_events` before it exits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from dockyard import clock, plugins
from dockyard.crash import crash_point
from dockyard.errors import DockyardError, StoreError
from dockyard.events import Event
from dockyard.plugins import Sink, SinkContext

log = logging.getLogger("dockyard.app.delivery")
BATCH = 100  # events read per pass
BASE_BACKOFF_S = 1.0


class DeliveryTimeout(Exception):
    pass


@dataclass
class PassResult:
    delivered: int = 0
    failed: bool = False
    held: bool = False  # another dispatcher holds the sink's cursor
    waiting: bool = False  # backing off after a failure
    last_id: int = 0  # the cursor after the pass
    more: bool = False  # a full batch was delivered: there may be more


def build_sinks(app) -> list[Sink]:
    """The sinks of ``events.sinks`` (validated when the config was loaded), then the
    built-in consumers that are configured (:mod:`dockyard.app.consumers`)."""
    from dockyard.app.consumers import builtin_sinks

    context = SinkContext(app.loaded.base_dir, app.state_dir, app.loaded.path)
    return [plugins.build_sink(spec.spec(), context) for spec in app.config.events.sinks] + builtin_sinks(app)


def backoff_seconds(failures: int, cap: float) -> float:
    """1 s, 2 s, 4 s, ... after 1, 2, 3 failures in a row, at most ``cap``."""
    return min(cap, BASE_BACKOFF_S * (2 ** max(0, failures - 1)))


def holder_id(kind: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{uuid.uuid4().hex[:8]}"


class SinkDelivery:
    """Delivers the outbox to one sink (see the module doc). Not thread-safe: one thread
    runs its passes."""

    def __init__(
        self,
        store,
        sink: Sink,
        holder: str,
        *,
        timeout_s: float = 10.0,
        max_backoff_s: float = 300.0,
        lease_s: float = 30.0,
    ):
        self.store = store
        self.sink = sink
        self.holder = holder
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.lease_s = max(lease_s, 3 * timeout_s)  # a delivery never outlasts the lease
        self._stuck: threading.Thread | None = None  # a delivery that overran its time

    def run_pass(self, *, upto: int | None = None, ignore_backoff: bool = False) -> PassResult:
        """Deliver what is pending (up to event ``upto`` when given, at most :data:`BATCH`)."""
        result = PassResult()
        now = clock.now()
        cursor = self.store.outbox.claim_cursor(self.sink.name, self.holder, self.lease_s, now=now)
        if cursor is None:
            result.held = True
            return result
        result.last_id = cursor.last_id
        if not ignore_backoff and cursor.next_attempt_at is not None and cursor.next_attempt_at > now:
            result.waiting = True
            return result
        events = self.store.reader.outbox.events_after(cursor.last_id, limit=BATCH, upto=upto)
        renewed = time.monotonic()
        for event in events:
            if time.monotonic() - renewed > self.lease_s / 3:  # keep the lease for a long batch
                if self.store.outbox.claim_cursor(self.sink.name, self.holder, self.lease_s) is None:
                    result.held = True
                    return result
                renewed = time.monotonic()
            try:
                self._deliver(event)
            except Exception as exc:  # noqa: BLE001 - a sink's failure never leaves this loop
                failures = cursor.failures + 1
                wait = backoff_seconds(failures, self.max_backoff_s)
                error = f"{type(exc).__name__}: {exc}"
                failures = self.store.outbox.cursor_failed(
                    self.sink.name, self.holder, error, clock.now() + timedelta(seconds=wait)
                )
                log.warning(
                    "event sink %s: delivery of event %s (%s) failed (%s in a row), next attempt in %.0f s: %s",
                    self.sink.name,
                    event.id,
                    event.key,
                    failures,
                    wait,
                    error,
                )
                result.failed = True
                return result
            crash_point("event_delivered")
            if not self.sink.name.startswith("dockyard."):
                crash_point("sink_event_delivered")
            if not self.store.outbox.advance_cursor(self.sink.name, self.holder, event.id):
                result.held = True  # the lease was taken over (we were too slow): stop here
                return result
            cursor = type(cursor)(cursor.sink, event.id, 0, None, None)
            result.delivered += 1
            result.last_id = event.id
        result.more = len(events) == BATCH
        return result

    def _deliver(self, event: Event) -> None:
        """``sink.deliver(event)`` in a thread, waited for at most ``timeout_s``. A delivery that
        overran keeps its thread; no other starts until it has returned."""
        if self._stuck is not None:
            if self._stuck.is_alive():
                raise DeliveryTimeout(f"an earlier delivery is still running after {self.timeout_s:g} s")
            self._stuck = None
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                self.sink.deliver(event)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome.append(exc)

        thread = threading.Thread(target=call, name=f"sink-{self.sink.name}", daemon=True)
        thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            self._stuck = thread
            raise DeliveryTimeout(f"the delivery took more than {self.timeout_s:g} s")
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def release(self) -> None:
        try:
            self.store.outbox.release_cursor(self.sink.name, self.holder)
        except StoreError:
            pass


def deliveries(app, holder: str) -> list[SinkDelivery]:
    events = app.config.events
    lease = max(3 * app.config.server.heartbeat_seconds, 10.0)
    return [
        SinkDelivery(
            app.store,
            sink,
            holder,
            timeout_s=events.delivery_timeout_seconds,
            max_backoff_s=events.max_backoff_seconds,
            lease_s=lease,
        )
        for sink in build_sinks(app)
    ]


def deliver_run_events(app, run_id: int, *, wait_s: float | None = None) -> bool:
    """A foreground run's delivery: every sink gets the outbox up to the run's last event,
    within ``wait_s`` (``events.foreground_wait_seconds``) in all. A sink whose cursor a
    running scheduler holds is left to it (the wait then only watches its cursor pass the
    run's events). Returns whether every sink has them; never raises (a run's outcome does
    not depend on its notifications). Events delivered here and by a scheduler carry the
    same keys."""
    try:
        wait_s = app.config.events.foreground_wait_seconds if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        upto = app.store.reader.outbox.last_event_id(run_id)
        if not upto:
            return True
        every = deliveries(app, holder_id("run"))
        if not every:
            return True
    except (DockyardError, ValueError, LookupError) as exc:
        log.warning("run %s: its events were not delivered: %s", run_id, exc)
        return False
    pending = list(every)
    first = True
    try:
        while pending:
            remaining = deadline - time.monotonic()
            for delivery in list(pending):
                delivery.timeout_s = max(0.1, min(delivery.timeout_s, remaining))
                try:  # the first attempt is made at once, the next ones follow the backoff
                    result = delivery.run_pass(upto=upto, ignore_backoff=first)
                    done = result.last_id >= upto
                    if result.held:  # a scheduler delivers: watch its cursor
                        cursor = app.store.reader.outbox.cursor(delivery.sink.name)
                        done = cursor is not None and cursor.last_id >= upto
                except StoreError as exc:
                    log.warning("run %s: event delivery: %s", run_id, exc.what)
                    done = False
                if done:
                    pending.remove(delivery)
                    delivery.release()
            first = False
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        for delivery in pending:
            log.warning(
                "run %s: event sink %s did not get the run's events within %.0f s (a scheduler delivers them later)",
                run_id,
                delivery.sink.name,
                wait_s,
            )
            delivery.release()
        return not pending
    finally:
        for delivery in every:
            delivery.sink.close()


def deliver_after(app, run_id: int, execute):
    """``execute()`` (a foreground run), then its events delivered (:func:`deliver_run_events`),
    whether the run ended normally, in a setup failure or interrupted."""
    try:
        return execute()
    finally:
        started = time.monotonic()
        deliver_run_events(app, run_id)
        # its alerts (queued by the alerts consumer above), in what is left of the wait
        wait_s = app.config.events.foreground_wait_seconds - (time.monotonic() - started)
        app.alerts.flush_run(run_id, wait_s=max(wait_s, min(2.0, app.config.events.foreground_wait_seconds)))
