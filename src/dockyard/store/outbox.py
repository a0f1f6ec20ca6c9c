"""The outbox: run events written with the run changes they report, and per-sink cursors.

**Writing.** :func:`write_events` inserts events inside the caller's transaction (the final
event in the transaction that makes the run final, see ``Leases._settle``). Keys are
unique (``ON CONFLICT DO NOTHING``), so writing an event twice keeps the first.

**Ids commit in order.** The dispatcher reads ``id > cursor``, which is only safe if no
event with a smaller id can still commit after a larger one was read. SQLite serialises
writers (``BEGIN IMMEDIATE``). On PostgreSQL a sequence hands out ids at insert time, not at
commit, so :func:`write_events` takes a transaction-level advisory lock first
(:data:`OUTBOX_LOCK_KEY`): the id is taken under it and it is released at commit, so event
ids become visible in order. Every caller writes its events last in its transaction, so the
lock is held only for the insert and the commit (and, taken last, cannot be part of a
lock cycle).

**Delivering.** Each sink has a row in ``outbox_cursors``: the last event id delivered, the
dispatcher currently delivering (``holder`` until ``lease_until``, taken by compare-and-set
so two schedulers never deliver to one sink at the same time) and its failure backoff.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.engine import Connection

from dockyard import clock
from dockyard.domain import FAILED_STATUSES, NodeResult, StepResult
from dockyard.events import (
    MAX_FAILED_NODES,
    Event,
    RunEvent,
    final_event_type,
    final_key,
    run_payload,
)
from dockyard.store import records as rec
from dockyard.store.base import Repository
from dockyard.store.tables import node_results, outbox, outbox_cursors, run_steps, runs
from dockyard.text import storable

OUTBOX_LOCK_KEY = 0x646F636B796F7574  # "dockyout": event ids are taken and committed in order
MAX_ERROR_CHARS = 2000
NEW_SINK_LOOKBACK = timedelta(hours=1)  # a sink seen for the first time gets the last hour's events


@dataclass(frozen=True)
class EventRow:
    """An event to write: its idempotency key, type, run and JSON payload."""

    key: str
    type: RunEvent
    run_id: int | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Cursor:
    """A sink's delivery state, as claimed by :meth:`Outbox.claim_cursor`."""

    sink: str
    last_id: int
    failures: int
    next_attempt_at: datetime | None
    last_error: str | None
    holder: str | None = None
    lease_until: datetime | None = None


def write_events(conn: Connection, events: Iterable[EventRow | None], now: datetime | None = None) -> None:
    """Insert ``events`` in the caller's transaction (call it last: see the module doc)."""
    now = now or clock.now()
    rows = [
        {
            "key": e.key,
            "type": e.type.value,
            "run_id": e.run_id,
            "payload": storable(rec.jsonable(e.payload)),
            "created_at": now,
        }
        for e in events
        if e is not None
    ]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:key AS bigint))"), {"key": OUTBOX_LOCK_KEY})
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(outbox).on_conflict_do_nothing(index_elements=["key"]), rows)


def load_run(conn: Connection, run_id: int, *, failed_nodes: bool = False) -> tuple[Any, int]:
    """The run (with its steps; with ``failed_nodes``: its first failed nodes) read in the
    caller's transaction, and how many nodes failed in all."""
    row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
    if row is None:
        return None, 0
    run = rec.run_record(row)
    run.steps = [
        rec.step_result(r)
        for r in conn.execute(
            select(run_steps).where(run_steps.c.run_id == run_id).order_by(run_steps.c["index"])
        ).mappings()
    ]
    total = 0
    if failed_nodes:
        failed = node_results.c.status.in_(sorted(FAILED_STATUSES))
        run.nodes = [
            rec.node_result(r)
            for r in conn.execute(
                select(node_results)
                .where(node_results.c.run_id == run_id, failed)
                .order_by(node_results.c.step_index, node_results.c.id)
                .limit(MAX_FAILED_NODES)
            ).mappings()
        ]
        total = conn.execute(
            select(func.count()).select_from(node_results).where(node_results.c.run_id == run_id, failed)
        ).scalar_one()
    return run, total


def final_event(conn: Connection, run_id: int) -> EventRow | None:
    """The final event of ``run_id``, which the caller's transaction has just made final."""
    run, total = load_run(conn, run_id, failed_nodes=True)
    if run is None or not run.status.is_final:
        return None
    payload = dataclasses.replace(run_payload(run, final=True), failed_nodes_total=total)
    return EventRow(final_key(run_id), final_event_type(run.status, run.reason), run_id, payload.to_dict())


def run_event(
    conn: Connection,
    run_id: int,
    type_: RunEvent,
    key: str,
    *,
    step: StepResult | None = None,
    node: NodeResult | None = None,
    run: Any = None,
) -> EventRow | None:
    """A non-final event of ``run_id`` (``run``: the run already read in this transaction)."""
    if run is None:
        run, _ = load_run(conn, run_id)
    if run is None:
        return None
    if step is not None:
        step = next((s for s in run.steps if s.index == step.index), step)
    return EventRow(key, type_, run_id, run_payload(run, step=step, node=node).to_dict())


def lease_epoch(conn: Connection, run_id: int) -> int:
    return conn.execute(select(runs.c.lease_epoch).where(runs.c.id == run_id)).scalar() or 0


class OutboxReader(Repository):
    """Reading the outbox: events and cursors."""

    def events_after(self, last_id: int, *, limit: int = 100, upto: int | None = None) -> list[Event]:
        """Events with ``last_id < id`` (``<= upto`` when given), oldest first."""
        stmt = select(outbox).where(outbox.c.id > last_id).order_by(outbox.c.id).limit(limit)
        if upto is not None:
            stmt = stmt.where(outbox.c.id <= upto)
        with self.db.read() as conn:
            return [_event(r) for r in conn.execute(stmt).mappings()]

    def run_events(self, run_id: int) -> list[Event]:
        """Every event of a run, oldest first."""
        with self.db.read() as conn:
            return [
                _event(r)
                for r in conn.execute(select(outbox).where(outbox.c.run_id == run_id).order_by(outbox.c.id)).mappings()
            ]

    def last_event_id(self, run_id: int | None = None) -> int:
        """The newest event id (of ``run_id`` when given); 0 when there is none."""
        stmt = select(func.max(outbox.c.id))
        if run_id is not None:
            stmt = stmt.where(outbox.c.run_id == run_id)
        with self.db.read() as conn:
            return conn.execute(stmt).scalar() or 0

    def cursor(self, sink: str) -> Cursor | None:
        with self.db.read() as conn:
            row = conn.execute(select(outbox_cursors).where(outbox_cursors.c.sink == sink)).mappings().first()
        return _cursor(row) if row else None


class Outbox(OutboxReader):
    """The outbox repository: reading events, the sinks' cursors (claim, advance, fail,
    release), pruning."""

    def claim_cursor(self, sink: str, holder: str, ttl_s: float, now: datetime | None = None) -> Cursor | None:
        """Take (or renew) the right to deliver to ``sink`` for ``ttl_s`` seconds: a
        compare-and-set that succeeds when nobody holds it, ``holder`` does, or the lease
        expired. A sink seen for the first time starts with the events of the last hour
        (:data:`NEW_SINK_LOOKBACK`), not the whole history.
        Returns the cursor, or None when another dispatcher holds it."""
        now = now or clock.now()
        until = now + timedelta(seconds=ttl_s)
        with self.db.write() as conn:
            start = (
                conn.execute(
                    select(func.max(outbox.c.id)).where(outbox.c.created_at < now - NEW_SINK_LOOKBACK)
                ).scalar()
                or 0
            )
            conn.execute(
                self.db.insert(outbox_cursors)
                .values(sink=sink, last_id=start, failures=0, updated_at=now)
                .on_conflict_do_nothing(index_elements=["sink"])
            )
            row = (
                conn.execute(
                    update(outbox_cursors)
                    .where(
                        outbox_cursors.c.sink == sink,
                        or_(
                            outbox_cursors.c.holder.is_(None),
                            outbox_cursors.c.holder == holder,
                            outbox_cursors.c.lease_until < now,
                        ),
                    )
                    .values(holder=holder, lease_until=until, updated_at=now)
                    .returning(*outbox_cursors.c)
                )
                .mappings()
                .first()
            )
        return _cursor(row) if row else None

    def advance_cursor(self, sink: str, holder: str, last_id: int, now: datetime | None = None) -> bool:
        """Record that every event up to ``last_id`` was delivered (clears the backoff);
        False when ``holder`` lost the lease meanwhile (nothing changed)."""
        now = now or clock.now()
        with self.db.write() as conn:
            return (
                conn.execute(
                    update(outbox_cursors)
                    .where(
                        outbox_cursors.c.sink == sink,
                        outbox_cursors.c.holder == holder,
                        outbox_cursors.c.last_id < last_id,
                    )
                    .values(last_id=last_id, failures=0, next_attempt_at=None, last_error=None, updated_at=now)
                ).rowcount
                == 1
            )

    def cursor_failed(self, sink: str, holder: str, error: str, retry_at: datetime, now: datetime | None = None) -> int:
        """Record a failed delivery: one more failure in a row, no attempt before ``retry_at``;
        returns the failures in a row (0 when ``holder`` lost the lease)."""
        now = now or clock.now()
        with self.db.write() as conn:
            row = conn.execute(
                update(outbox_cursors)
                .where(outbox_cursors.c.sink == sink, outbox_cursors.c.holder == holder)
                .values(
                    failures=outbox_cursors.c.failures + 1,
                    next_attempt_at=retry_at,
                    last_error=error[:MAX_ERROR_CHARS],
                    updated_at=now,
                )
                .returning(outbox_cursors.c.failures)
            ).first()
        return row.failures if row else 0

    def release_cursor(self, sink: str, holder: str) -> None:
        """Give the lease up (a stopping dispatcher, the end of a foreground delivery)."""
        with self.db.write() as conn:
            conn.execute(
                update(outbox_cursors)
                .where(outbox_cursors.c.sink == sink, outbox_cursors.c.holder == holder)
                .values(holder=None, lease_until=None)
            )

    def prune_outbox(self, before: datetime, sinks: Sequence[str]) -> int:
        """Delete events created before ``before`` that every sink in ``sinks`` has had."""
        with self.db.write() as conn:
            stmt = delete(outbox).where(outbox.c.created_at < before)
            if sinks:
                done = conn.execute(
                    select(func.min(outbox_cursors.c.last_id)).where(outbox_cursors.c.sink.in_(list(sinks)))
                ).scalar()
                known = conn.execute(
                    select(func.count()).select_from(outbox_cursors).where(outbox_cursors.c.sink.in_(list(sinks)))
                ).scalar_one()
                if done is None or known < len(set(sinks)):
                    return 0
                stmt = stmt.where(outbox.c.id <= done)
            return conn.execute(stmt).rowcount


def _event(row: Any) -> Event:
    return Event(row["id"], row["key"], RunEvent(row["type"]), row["run_id"], row["created_at"], row["payload"])


def _cursor(row: Any) -> Cursor:
    return Cursor(
        row["sink"],
        row["last_id"],
        row["failures"],
        row["next_attempt_at"],
        row["last_error"],
        row["holder"],
        row["lease_until"],
    )


__all__ = [
    "OUTBOX_LOCK_KEY",
    "Cursor",
    "EventRow",
    "Outbox",
    "OutboxReader",
    "final_event",
    "run_event",
    "write_events",
]
