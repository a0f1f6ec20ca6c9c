"""What the metrics features remember between runs: which models are slow now (slowdown
alerts), the queue of runs whose results go to the warehouse, and the daily digests sent.

Every write is one short transaction; claims are compare-and-set leases (as the outbox
cursors), so several schedulers never write one run's history or send one day's digest twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from dockyard import clock
from dockyard.store.base import Repository
from dockyard.store.metrics import CHUNK
from dockyard.store.tables import digests, history_writes, model_slowdowns, node_results, runs

nr = node_results


class MetricState(Repository):
    # -- slowdowns ------------------------------------------------------------------------------
    def baselines(
        self, environment: str, unique_ids: Sequence[str], before_run_id: int, last: int
    ) -> dict[str, list[float]]:
        """Per model: the execution times of its last ``last`` successful executions in
        ``environment`` in runs before ``before_run_id`` (newest first)."""
        out: dict[str, list[float]] = {}
        ids = sorted(set(unique_ids))
        with self.db.read() as conn:
            for i in range(0, len(ids), CHUNK):
                ranked = (
                    select(
                        nr.c.unique_id,
                        nr.c.execution_time_s,
                        func.row_number()
                        .over(partition_by=nr.c.unique_id, order_by=(nr.c.run_id.desc(), nr.c.step_index.desc()))
                        .label("rank"),
                    )
                    .select_from(nr.join(runs, runs.c.id == nr.c.run_id))
                    .where(
                        nr.c.unique_id.in_(ids[i : i + CHUNK]),
                        nr.c.run_id < before_run_id,
                        nr.c.status == "success",
                        nr.c.execution_time_s.is_not(None),
                        runs.c.environment == environment,
                    )
                    .subquery()
                )
                query = (
                    select(ranked.c.unique_id, ranked.c.execution_time_s)
                    .where(ranked.c.rank <= last)
                    .order_by(ranked.c.unique_id, ranked.c.rank)
                )
                for uid, seconds in conn.execute(query).all():
                    out.setdefault(uid, []).append(float(seconds))
        return out

    def slow_states(self, environment: str, unique_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """The slowdown state of models in ``environment`` (all the slow ones when
        ``unique_ids`` is None): ``{uid: {"slow", "subject", "run_id", "ratio"}}``."""
        query = select(model_slowdowns).where(model_slowdowns.c.environment == environment)
        if unique_ids is None:
            query = query.where(model_slowdowns.c.slow.is_(True))
        out: dict[str, dict[str, Any]] = {}
        with self.db.read() as conn:
            if unique_ids is None:
                rows = conn.execute(query).mappings().all()
            else:
                ids = sorted(set(unique_ids))
                rows = [
                    r
                    for i in range(0, len(ids), CHUNK)
                    for r in conn.execute(query.where(model_slowdowns.c.unique_id.in_(ids[i : i + CHUNK])))
                    .mappings()
                    .all()
                ]
        for r in rows:
            out[r["unique_id"]] = {
                "slow": r["slow"],
                "subject": r["subject"],
                "run_id": r["run_id"],
                "ratio": r["ratio"],
            }
        return out

    def set_slow_states(self, environment: str, states: dict[str, dict[str, Any]], now: datetime | None = None) -> None:
        """Upsert ``{uid: {"slow", "subject", "run_id", "ratio"}}`` in one transaction."""
        if not states:
            return
        now = now or clock.now()
        rows = [
            {
                "environment": environment,
                "unique_id": uid,
                "slow": bool(s["slow"]),
                "subject": s.get("subject"),
                "run_id": s.get("run_id"),
                "ratio": s.get("ratio"),
                "updated_at": now,
            }
            for uid, s in states.items()
        ]
        with self.db.write() as conn:
            stmt = self.db.insert(model_slowdowns)
            stmt = stmt.on_conflict_do_update(
                index_elements=["environment", "unique_id"],
                set_={k: stmt.excluded[k] for k in ("slow", "subject", "run_id", "ratio", "updated_at")},
            )
            conn.execute(stmt, rows)

    # -- the warehouse history queue -----------------------------------------------------------
    def queue_history(self, run_id: int, environment: str, now: datetime | None = None) -> bool:
        """Queue the write of a run's history (once per run); True when newly queued."""
        now = now or clock.now()
        with self.db.write() as conn:
            stmt = (
                self.db.insert(history_writes)
                .values(run_id=run_id, environment=environment, state="pending", next_attempt_at=now, created_at=now)
                .on_conflict_do_nothing(index_elements=["run_id"])
                .returning(history_writes.c.run_id)
            )
            return conn.execute(stmt).first() is not None  # (rowcount is -1 on PostgreSQL)

    def claim_history(
        self,
        holder: str,
        ttl_s: float,
        *,
        limit: int = 5,
        skip_environments: Sequence[str] = (),
        skip_newer_than: datetime | None = None,
        now: datetime | None = None,
    ) -> list[dict]:
        """Take up to ``limit`` due pending writes (oldest first) for ``ttl_s`` seconds; the
        writes of ``skip_environments`` queued after ``skip_newer_than`` wait (busy warehouses)."""
        now = now or clock.now()
        until = now + timedelta(seconds=ttl_s)
        due = (
            history_writes.c.state == "pending",
            history_writes.c.next_attempt_at <= now,
            or_(history_writes.c.lease_until.is_(None), history_writes.c.lease_until < now),
        )
        query = select(history_writes.c.run_id).where(*due).order_by(history_writes.c.run_id).limit(limit)
        if skip_environments:
            query = query.where(
                or_(
                    history_writes.c.environment.not_in(list(skip_environments)),
                    history_writes.c.created_at <= (skip_newer_than or now),
                )
            )
        claimed = []
        with self.db.write() as conn:
            ids = conn.execute(query).scalars().all()
            for run_id in ids:
                row = (
                    conn.execute(
                        update(history_writes)
                        .where(history_writes.c.run_id == run_id, *due)
                        .values(holder=holder, lease_until=until, attempts=history_writes.c.attempts + 1)
                        .returning(*history_writes.c)
                    )
                    .mappings()
                    .first()
                )
                if row:
                    claimed.append(dict(row))
        return claimed

    def history_done(self, run_id: int, holder: str, rows: int, now: datetime | None = None) -> bool:
        now = now or clock.now()
        with self.db.write() as conn:
            stmt = (
                update(history_writes)
                .where(history_writes.c.run_id == run_id, history_writes.c.holder == holder)
                .values(state="done", rows=rows, written_at=now, holder=None, lease_until=None, last_error=None)
            )
            return conn.execute(stmt).rowcount == 1

    def history_failed(
        self, run_id: int, holder: str, error: str, retry_at: datetime | None, now: datetime | None = None
    ) -> bool:
        """A failed write: again at ``retry_at``, or given up (``failed``) when it is None."""
        values: dict[str, Any] = {"holder": None, "lease_until": None, "last_error": error[:2000]}
        if retry_at is None:
            values["state"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        with self.db.write() as conn:
            stmt = (
                update(history_writes)
                .where(history_writes.c.run_id == run_id, history_writes.c.holder == holder)
                .values(**values)
            )
            return conn.execute(stmt).rowcount == 1

    def history_writes(self, *, limit: int = 50) -> list[dict]:
        """The newest queued writes, with their state (for status pages and tests)."""
        with self.db.read() as conn:
            query = select(history_writes).order_by(history_writes.c.run_id.desc()).limit(limit)
            return [dict(r) for r in conn.execute(query).mappings().all()]

    # -- daily digests ------------------------------------------------------------------------------
    def claim_digest(self, day: str, holder: str, ttl_s: float, now: datetime | None = None) -> bool:
        """The right to send the digest of local date ``day``: True for the first claimer, or
        for anyone once a claim that never finished expired; False once it was sent."""
        now = now or clock.now()
        until = now + timedelta(seconds=ttl_s)
        with self.db.write() as conn:
            inserted = conn.execute(
                self.db.insert(digests)
                .values(day=day, holder=holder, lease_until=until, created_at=now)
                .on_conflict_do_nothing(index_elements=["day"])
                .returning(digests.c.day)
            ).first()
            if inserted is not None:
                return True
            taken = conn.execute(
                update(digests)
                .where(digests.c.day == day, digests.c.sent_at.is_(None), digests.c.lease_until < now)
                .values(holder=holder, lease_until=until)
            ).rowcount
            return taken == 1

    def digest_sent(self, day: str, holder: str, queued: int, now: datetime | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(digests)
                .where(digests.c.day == day, digests.c.holder == holder)
                .values(sent_at=now or clock.now(), queued=queued)
            )

    def digest(self, day: str) -> dict | None:
        with self.db.read() as conn:
            row = conn.execute(select(digests).where(digests.c.day == day)).mappings().first()
            return dict(row) if row else None
