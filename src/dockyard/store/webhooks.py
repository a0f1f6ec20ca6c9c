"""Inbound webhook deliveries (table ``webhook_deliveries``): de-duplication by delivery id.

A delivery is recorded *before* it is acted on and marked done *after*; the action itself
is idempotent (its runs are queued under fire keys derived from the delivery id), so:

* a delivery seen again once done is a duplicate and does nothing;
* a crash between the record and the end leaves it ``pending``: the provider's redelivery
  (same delivery id) takes it over once the claim is older than ``stale_after_s`` and
  repeats the action, whose fire keys make it queue nothing twice;
* a redelivery while the first is still being handled answers "in progress".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from dockyard import clock
from dockyard.store.base import Repository
from dockyard.store.tables import webhook_deliveries as wd

PENDING, DONE = "pending", "done"
STALE_AFTER_S = 60.0  # a pending claim older than this was lost (the handler died): take it over


@dataclass(frozen=True)
class DeliveryClaim:
    """What :meth:`Webhooks.claim` found. ``owner``: this caller must act (``retry``: a lost
    earlier attempt is being repeated); otherwise ``state`` is ``done`` (a duplicate, with the
    first answer's ``result``) or ``pending`` (another handler is on it)."""

    owner: bool
    state: str
    retry: bool = False
    result: dict | None = None


class Webhooks(Repository):
    def claim(
        self,
        provider: str,
        delivery_id: str,
        event: str,
        *,
        stale_after_s: float = STALE_AFTER_S,
        now: datetime | None = None,
    ) -> DeliveryClaim:
        """Record a delivery as being handled, once per ``(provider, delivery_id)``."""
        now = now or clock.now()
        with self.db.write() as conn:
            stmt = (
                self.db.insert(wd)
                .values(
                    provider=provider,
                    delivery_id=delivery_id,
                    event=event[:64],
                    received_at=now,
                    state=PENDING,
                    claimed_at=now,
                )
                .on_conflict_do_nothing(index_elements=["provider", "delivery_id"])
                .returning(wd.c.id)
            )
            if conn.execute(stmt).scalar() is not None:
                return DeliveryClaim(True, PENDING)
            row = (
                conn.execute(select(wd).where(wd.c.provider == provider, wd.c.delivery_id == delivery_id))
                .mappings()
                .one()
            )
            if row["state"] == DONE:
                return DeliveryClaim(False, DONE, result=row["result"])
            if row["claimed_at"] > now - timedelta(seconds=stale_after_s):
                return DeliveryClaim(False, PENDING)
            taken = conn.execute(  # compare-and-set: one of several redeliveries takes it over
                update(wd)
                .where(wd.c.id == row["id"], wd.c.state == PENDING, wd.c.claimed_at == row["claimed_at"])
                .values(claimed_at=now)
            ).rowcount
            return DeliveryClaim(bool(taken), PENDING, retry=bool(taken))

    def finish(self, provider: str, delivery_id: str, result: dict[str, Any] | None = None) -> None:
        """The delivery was handled: later copies are duplicates."""
        with self.db.write() as conn:
            conn.execute(
                update(wd)
                .where(wd.c.provider == provider, wd.c.delivery_id == delivery_id)
                .values(state=DONE, finished_at=clock.now(), result=result)
            )

    def release(self, provider: str, delivery_id: str) -> None:
        """Handling failed: the next copy of the delivery may act at once."""
        with self.db.write() as conn:
            conn.execute(
                update(wd)
                .where(wd.c.provider == provider, wd.c.delivery_id == delivery_id, wd.c.state == PENDING)
                .values(claimed_at=datetime(1970, 1, 2, tzinfo=UTC))
            )

    def get(self, provider: str, delivery_id: str) -> dict | None:
        with self.db.read() as conn:
            row = (
                conn.execute(select(wd).where(wd.c.provider == provider, wd.c.delivery_id == delivery_id))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def prune(self, before: datetime) -> int:
        """Forget the deliveries handled before ``before`` (a copy of one arriving later would
        act again: keep them longer than providers redeliver)."""
        with self.db.write() as conn:
            return conn.execute(delete(wd).where(wd.c.state == DONE, wd.c.received_at < before)).rowcount
