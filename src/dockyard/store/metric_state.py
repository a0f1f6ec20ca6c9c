"""What the metrics features remember between runs: which models are slow now (slowdown
alerts), the queue of runs whose results go to the warehouse, and the daily digests sent.

Every write is one short transaction; claims are compare-and-set leases (as the outbox
cursors), so several schedulers never write one run's history or send one day's digest twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, or_, select, update

from dockyard import clock
from dockyard.domain import COMPILED
from dockyard.store.base import Repository
from dockyard.store.metrics import CHUNK
from dockyard.store.tables import (
    MODEL_BUCKETS,
    counted_runs,
    digests,
    history_writes,
    model_durations,
    model_slowdowns,
    node_results,
    runs,
)

nr = node_results


class MetricState(Repository):
    # -- slowdowns ------------------------------------------------------------------------------
    def baselines(
        self, environment: str, unique_ids: Sequence[str], before_run_id: int, last: int
    ) -> dict[str, list[float]]:
        """Per model: the execution times of its last ``last`` successful executions in
        ``environment`` in runs before ``before_run_id`` (newest first). One query per model
        walking the ``(unique_id, run_id)`` index backwards, stopping after ``last`` rows:
        the cost does not grow with the history."""
        out: dict[str, list[float]] = {}
        with self.db.read() as conn:
            for uid in sorted(set(unique_ids)):
                query = (
                    select(nr.c.execution_time_s)
                    .select_from(nr.join(runs, runs.c.id == nr.c.run_id))
                    .where(
                        nr.c.unique_id == uid,
                        nr.c.run_id < before_run_id,
                        nr.c.status == "success",
                        nr.c.execution_time_s.is_not(None),
                        runs.c.environment == environment,
                    )
                    .order_by(nr.c.unique_id.desc(), nr.c.run_id.desc())
                    .limit(last)
                )
                times = [float(t) for t in conn.execute(query).scalars()]
                if times:
                    out[uid] = times
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

    # -- the model duration histogram ----------------------------------------------------------
    def count_run(self, run_id: int, now: datetime | None = None) -> int:
        """Add a final run's model executions to the ``model_durations`` histogram, once per
        run (``counted_runs``): increments in SQL (``count = count + ...``), so two writers
        never lose one. Returns the models counted (0 when the run was counted already)."""
        now = now or clock.now()
        with self.db.write() as conn:
            first = conn.execute(
                self.db.insert(counted_runs)
                .values(run_id=run_id, counted_at=now)
                .on_conflict_do_nothing(index_elements=["run_id"])
                .returning(counted_runs.c.run_id)
            ).first()
            if first is None:
                return 0
            env = conn.execute(select(runs.c.environment).where(runs.c.id == run_id)).scalar()
            times: dict[str, float] = {}
            for uid, seconds in conn.execute(
                select(nr.c.unique_id, nr.c.execution_time_s)
                .where(
                    nr.c.run_id == run_id,
                    nr.c.resource_type == "model",
                    nr.c.status != COMPILED,
                    nr.c.status != "started",
                    nr.c.execution_time_s.is_not(None),
                )
                .order_by(nr.c.step_index)
            ):
                times[uid] = float(seconds)  # a node run in several steps: its last step
            if env is None or not times:
                return 0
            rows = [
                {
                    "environment": env,
                    "unique_id": uid,
                    "count": 1,
                    "sum": t,
                    **{f"b{i:02d}": int(t <= bound) for i, bound in enumerate(MODEL_BUCKETS)},
                    "last_run_id": run_id,
                    "updated_at": now,
                }
                for uid, t in times.items()
            ]
            stmt = self.db.insert(model_durations)
            t = model_durations.c
            add = ["count", "sum", *(f"b{i:02d}" for i in range(len(MODEL_BUCKETS)))]
            stmt = stmt.on_conflict_do_update(
                index_elements=["environment", "unique_id"],
                set_={
                    **{k: t[k] + stmt.excluded[k] for k in add},
                    "last_run_id": case(
                        (stmt.excluded.last_run_id > t.last_run_id, stmt.excluded.last_run_id), else_=t.last_run_id
                    ),
                    "updated_at": stmt.excluded.updated_at,
                },
            )
            conn.execute(stmt, rows)
            return len(rows)

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
