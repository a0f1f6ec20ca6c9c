"""Alert deliveries (table ``notifications``) and the no-storm state (table ``alert_state``).

**Queueing.** :meth:`Notifications.queue` writes one row per (alert key, channel) and moves
the channel's state for the alert's subject in the same transaction: the caller's
``decide(state)`` (a pure function, see :mod:`dockyard.app.alert_rules`) reads the state and
says whether the delivery is ``pending`` or ``suppressed`` and what the state becomes. The
unique (alert key, channel) makes queueing idempotent: an event delivered twice queues once.

**Sending.** :meth:`Notifications.claim` takes due pending rows by compare-and-set on a
lease (``holder`` until ``lease_until``), so two schedulers never send one row at the same
time; an expired lease (a sender that died) is taken over. :meth:`sent` and :meth:`failed`
end an attempt (only for the holder). A row that failed ``max_attempts`` times is ``failed``.

**Deferred.** A run failure whose retry is not decided yet is kept as a ``deferred`` row
(channel ``*``) holding the alert, re-evaluated by the sender until decided, then deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update

from dockyard import clock
from dockyard.store.base import Repository
from dockyard.store.tables import alert_state, notifications, runs

STATUSES = ("pending", "sent", "failed", "suppressed", "deferred")
DEFERRED_CHANNEL = "*"
MAX_ERROR_CHARS = 1000
MAX_RESULT_CHARS = 500


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery log."""

    id: int
    alert_key: str
    channel: str
    channel_type: str
    kind: str
    event: str
    subject: str
    run_id: int | None
    job: str | None
    environment: str | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    result: str | None
    alert: dict[str, Any]
    created_at: datetime
    sent_at: datetime | None

    def to_dict(self, *, alert: bool = False) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in Delivery.__dataclass_fields__ if k != "alert"}
        for key in ("next_attempt_at", "created_at", "sent_at"):
            data[key] = data[key].isoformat() if data[key] else None
        if alert:
            data["alert"] = self.alert
        return data


@dataclass(frozen=True)
class AlertState:
    """What a channel last heard about a subject."""

    subject: str
    channel: str
    last_event: str
    open: bool  # an unresolved problem alert was queued for it
    last_final: bool  # and it was final (not "retrying")
    last_sent_at: datetime | None


@dataclass(frozen=True)
class Target:
    """One channel an alert is routed to, and the alert as that channel gets it."""

    channel: str
    channel_type: str
    alert: dict[str, Any]  # Alert.to_dict() (a resolve may differ from the alert given)
    event: str


@dataclass(frozen=True)
class Decision:
    """What ``decide`` says for one target: the row's status (None: no row at all) and the
    channel's new state (None: unchanged)."""

    status: str | None
    open: bool | None = None
    final: bool = True
    sent: bool = False  # stamp last_sent_at
    alert: dict[str, Any] | None = None  # the alert as this channel gets it (default: the target's)
    event: str | None = None


def _delivery(row: Any) -> Delivery:
    return Delivery(**{k: row[k] for k in Delivery.__dataclass_fields__})


def _state(row: Any) -> AlertState:
    return AlertState(
        row["subject"],
        row["channel"],
        row["last_event"],
        bool(row["open"]),
        bool(row["last_final"]),
        row["last_sent_at"],
    )


class NotificationReader(Repository):
    """Reading the delivery log and the alert state."""

    def deliveries(
        self, *, run_id: int | None = None, limit: int = 100, statuses: Sequence[str] | None = None
    ) -> list[Delivery]:
        """The newest deliveries first (of ``run_id`` when given), deferred rows left out
        unless asked for."""
        stmt = select(notifications).order_by(notifications.c.id.desc()).limit(limit)
        if run_id is not None:
            stmt = stmt.where(notifications.c.run_id == run_id)
        if statuses:
            stmt = stmt.where(notifications.c.status.in_(list(statuses)))
        else:
            stmt = stmt.where(notifications.c.status != "deferred")
        with self.db.read() as conn:
            return [_delivery(r) for r in conn.execute(stmt).mappings()]

    def state(self, subject: str) -> list[AlertState]:
        """Every channel's state for ``subject``."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(alert_state).where(alert_state.c.subject == subject).order_by(alert_state.c.channel)
            ).mappings()
            return [_state(r) for r in rows]

    def pending_count(self, *, run_id: int | None = None) -> int:
        """Rows still to send (pending or deferred)."""
        stmt = select(notifications.c.id).where(notifications.c.status.in_(["pending", "deferred"]))
        if run_id is not None:
            stmt = stmt.where(notifications.c.run_id == run_id)
        with self.db.read() as conn:
            return len(conn.execute(stmt.limit(10000)).all())

    def retry_run(self, run_id: int) -> int | None:
        """The id of the run that retries ``run_id`` (its ``retry_of``), if one was queued."""
        with self.db.read() as conn:
            return conn.execute(select(runs.c.id).where(runs.c.retry_of == run_id).limit(1)).scalar()


class Notifications(NotificationReader):
    """The delivery queue: queue under the no-storm rules, claim, end attempts, defer."""

    def queue(
        self,
        base: dict[str, Any],
        targets: Sequence[Target],
        decide: Callable[[Target, AlertState | None], Decision],
        now: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """Queue ``targets`` of one alert (``base``: alert_key, kind, subject, run_id, job,
        environment) in one transaction; returns ``(channel, status)`` of the rows written
        (a row already there for (alert key, channel) is left, and its state untouched)."""
        now = now or clock.now()
        written: list[tuple[str, str]] = []
        with self.db.write() as conn:
            for target in targets:
                row = (
                    conn.execute(
                        select(alert_state).where(
                            alert_state.c.subject == base["subject"], alert_state.c.channel == target.channel
                        )
                    )
                    .mappings()
                    .first()
                )
                decision = decide(target, _state(row) if row else None)
                if decision.status is None:
                    continue
                inserted = conn.execute(
                    self.db.insert(notifications)
                    .values(
                        **base,
                        channel=target.channel,
                        channel_type=target.channel_type,
                        event=decision.event or target.event,
                        status=decision.status,
                        attempts=0,
                        next_attempt_at=now if decision.status == "pending" else None,
                        alert=decision.alert if decision.alert is not None else target.alert,
                        created_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["alert_key", "channel"])
                    .returning(notifications.c.id)
                ).first()  # rowcount is -1 on PostgreSQL here: RETURNING says whether it was written
                if inserted is None:
                    continue
                written.append((target.channel, decision.status))
                if decision.open is None:
                    continue
                values = dict(
                    last_event=decision.event or target.event,
                    open=decision.open,
                    last_final=decision.final,
                    updated_at=now,
                )
                if decision.sent:
                    values["last_sent_at"] = now
                if row is None:
                    conn.execute(alert_state.insert().values(subject=base["subject"], channel=target.channel, **values))
                else:
                    conn.execute(
                        update(alert_state)
                        .where(alert_state.c.subject == base["subject"], alert_state.c.channel == target.channel)
                        .values(**values)
                    )
        return written

    def claim(
        self,
        holder: str,
        lease_s: float,
        *,
        limit: int = 10,
        run_id: int | None = None,
        now: datetime | None = None,
    ) -> list[Delivery]:
        """Take up to ``limit`` due pending deliveries (of ``run_id`` when given) for
        ``lease_s`` seconds, each by compare-and-set; counts the attempt."""
        now = now or clock.now()
        free = or_(notifications.c.lease_until.is_(None), notifications.c.lease_until < now)
        due = (
            notifications.c.status == "pending",
            or_(notifications.c.next_attempt_at.is_(None), notifications.c.next_attempt_at <= now),
            free,
        )
        stmt = select(notifications.c.id).where(*due).order_by(notifications.c.id).limit(limit)
        if run_id is not None:
            stmt = stmt.where(notifications.c.run_id == run_id)
        claimed = []
        with self.db.write() as conn:
            for (row_id,) in conn.execute(stmt).all():
                row = (
                    conn.execute(
                        update(notifications)
                        .where(notifications.c.id == row_id, *due)
                        .values(
                            holder=holder,
                            lease_until=now + timedelta(seconds=lease_s),
                            attempts=notifications.c.attempts + 1,
                        )
                        .returning(*notifications.c)
                    )
                    .mappings()
                    .first()
                )
                if row is not None:
                    claimed.append(_delivery(row))
        return claimed

    def sent(self, delivery_id: int, holder: str, result: str, now: datetime | None = None) -> bool:
        """The attempt succeeded; False when ``holder`` lost the row meanwhile."""
        now = now or clock.now()
        with self.db.write() as conn:
            return (
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id == delivery_id, notifications.c.holder == holder)
                    .values(
                        status="sent",
                        result=result[:MAX_RESULT_CHARS],
                        last_error=None,
                        sent_at=now,
                        holder=None,
                        lease_until=None,
                        next_attempt_at=None,
                    )
                ).rowcount
                == 1
            )

    def failed(self, delivery_id: int, holder: str, error: str, retry_at: datetime | None) -> bool:
        """The attempt failed: pending again from ``retry_at``, or ``failed`` for good when None."""
        values: dict[str, Any] = dict(last_error=error[:MAX_ERROR_CHARS], holder=None, lease_until=None)
        if retry_at is None:
            values.update(status="failed", next_attempt_at=None)
        else:
            values.update(status="pending", next_attempt_at=retry_at)
        with self.db.write() as conn:
            return (
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id == delivery_id, notifications.c.holder == holder)
                    .values(**values)
                ).rowcount
                == 1
            )

    # -- deferred run alerts -------------------------------------------------------------------
    def defer(self, base: dict[str, Any], alert: dict[str, Any], event: str, now: datetime | None = None) -> bool:
        """Keep ``alert`` undecided (one row per alert key); False when it already was."""
        now = now or clock.now()
        with self.db.write() as conn:
            return (
                conn.execute(
                    self.db.insert(notifications)
                    .values(
                        **base,
                        channel=DEFERRED_CHANNEL,
                        channel_type="-",
                        event=event,
                        status="deferred",
                        attempts=0,
                        alert=alert,
                        created_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["alert_key", "channel"])
                    .returning(notifications.c.id)
                ).first()
                is not None
            )

    def deferred(self, *, run_id: int | None = None, limit: int = 50) -> list[Delivery]:
        stmt = (
            select(notifications).where(notifications.c.status == "deferred").order_by(notifications.c.id).limit(limit)
        )
        if run_id is not None:
            stmt = stmt.where(notifications.c.run_id == run_id)
        with self.db.read() as conn:
            return [_delivery(r) for r in conn.execute(stmt).mappings()]

    def undefer(self, delivery_id: int) -> bool:
        """Drop a deferred row once decided; False when another process did first."""
        with self.db.write() as conn:
            return (
                conn.execute(
                    delete(notifications).where(notifications.c.id == delivery_id, notifications.c.status == "deferred")
                ).rowcount
                == 1
            )
