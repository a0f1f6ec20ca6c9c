"""Who owns an active run: worker heartbeats, the reaper, cancel requests, graceful requeue.

A worker owns a run from :meth:`dockyard.store.queue.Queue.claim` until the run is final
(or requeued), and proves it with the run's ``lease_epoch``. Everything here that takes a run away from a
worker (reap, requeue) bumps the epoch in the same conditional UPDATE, so the old
owner's next fenced write fails with :class:`dockyard.errors.FencedError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, select, update
from sqlalchemy.engine import Connection

from dockyard import clock
from dockyard.domain import RunStatus, StepStatus
from dockyard.errors import StoreError
from dockyard.store.base import ACTIVE, run_not_found
from dockyard.store.outbox import final_event, write_events
from dockyard.store.processes import ProcessOps
from dockyard.store.tables import run_steps, runs

STARTING, QUEUED = RunStatus.STARTING.value, RunStatus.QUEUED.value


@dataclass
class HeartbeatResult:
    """``lost``: runs the worker no longer owns (stop them); ``cancel_requested``: owned runs
    someone asked to cancel (cancel them)."""

    lost: list[int] = field(default_factory=list)
    cancel_requested: list[int] = field(default_factory=list)


@dataclass
class Reaped:
    """A run the reaper ended. ``epoch`` is the lease epoch the lost owner held (the run
    now has ``epoch + 1``); ``reason`` is ``worker_lost`` or ``start_timeout``;
    ``cancel_requested`` says a cancel was pending: the run then ended ``cancelled``, not
    ``error`` (so it is not retried)."""

    run_id: int
    worker_id: str | None
    host: str | None
    pgid: int | None
    epoch: int
    attempt: int
    job_id: int | None
    reason: str = "worker_lost"
    cancel_requested: bool = False
    warehouse_sessions: dict | None = None
    environment: str | None = None


class Leases(ProcessOps):
    """The leases repository: who owns an active run (heartbeats, reap, finish, cancel,
    requeue) and the process registry and named leases (:mod:`~dockyard.store.processes`)."""

    def heartbeat_runs(
        self, worker_id: str, leases: list[tuple[int, int]], now: datetime | None = None
    ) -> HeartbeatResult:
        """Renew the worker's runs, given as ``(run_id, epoch)`` pairs, in one transaction.

        A run is renewed (``heartbeat_at = now``) when it is still starting/running with
        that epoch and ``worker_id``; the others are reported ``lost``. Renewed runs that
        have ``cancel_requested_at`` set are reported in ``cancel_requested``.
        """
        now = now or clock.now()
        result = HeartbeatResult()
        with self.db.write() as conn:
            for run_id, epoch in leases:
                row = conn.execute(
                    update(runs)
                    .where(
                        runs.c.id == run_id,
                        runs.c.lease_epoch == epoch,
                        runs.c.worker_id == worker_id,
                        runs.c.status.in_(ACTIVE),
                    )
                    .values(heartbeat_at=now)
                    .returning(runs.c.cancel_requested_at)
                ).first()
                if row is None:
                    result.lost.append(run_id)
                elif row.cancel_requested_at is not None:
                    result.cancel_requested.append(run_id)
        return result

    def reap(
        self, stale_after_s: float, now: datetime | None = None, *, start_timeout_s: float | None = None
    ) -> list[Reaped]:
        """End the runs whose worker is gone; returns them (to kill leftovers, schedule retries).

        A run is reaped when it was claimed (``claimed_at`` set: foreground ``dockyard run``
        runs are left alone) and is starting/running with ``heartbeat_at`` older than
        ``now - stale_after_s`` (reason ``worker_lost``; a claim sets ``heartbeat_at``, so a
        run stuck in ``starting`` without heartbeats falls under this too) or, with
        ``start_timeout_s``, is still ``starting`` with ``claimed_at`` older than that
        (reason ``start_timeout``, even if its worker heartbeats). Each run is ended by its
        own compare-and-set on its current epoch: status ``error``, ``finished_at = now``,
        ``lease_epoch + 1`` (fencing the old owner), its running step ``error`` and its
        queued steps ``skipped``. Concurrent reapers reap each run once.
        """
        now = now or clock.now()
        stale = and_(
            runs.c.status.in_(ACTIVE),
            runs.c.claimed_at.is_not(None),
            runs.c.heartbeat_at < now - timedelta(seconds=stale_after_s),
        )
        slow = None
        if start_timeout_s is not None:
            slow = and_(runs.c.status == STARTING, runs.c.claimed_at < now - timedelta(seconds=start_timeout_s))
        cols = (
            runs.c.id,
            runs.c.worker_id,
            runs.c.host,
            runs.c.pgid,
            runs.c.lease_epoch,
            runs.c.attempt,
            runs.c.job_id,
            runs.c.cancel_requested_at,
            runs.c.warehouse_sessions,
            runs.c.environment,
        )
        with self.db.read() as conn:
            found = {
                reason: conn.execute(select(*cols).where(cond).order_by(runs.c.id)).all()
                for reason, cond in (("worker_lost", stale), ("start_timeout", slow))
                if cond is not None
            }
        reaped: list[Reaped] = []
        done: set[int] = set()
        for reason, rows in found.items():
            cond = stale if reason == "worker_lost" else slow
            for row in rows:
                if row.id in done:
                    continue
                try:
                    with self.db.write() as conn:
                        if not self._end_run(conn, row.id, row.lease_epoch, cond, RunStatus.ERROR, reason, now):
                            continue
                except StoreError:
                    if reaped:  # report the runs already reaped (their retries are due); the
                        return reaped  # others are found again by the next reap
                    raise
                done.add(row.id)
                reaped.append(
                    Reaped(
                        row.id,
                        row.worker_id,
                        row.host,
                        row.pgid,
                        row.lease_epoch,
                        row.attempt,
                        row.job_id,
                        reason,
                        row.cancel_requested_at is not None,
                        row.warehouse_sessions,
                        row.environment,
                    )
                )
        return reaped

    @staticmethod
    def _end_run(
        conn: Connection, run_id: int, epoch: int | None, cond: object, status: RunStatus, reason: str, now: datetime
    ) -> bool:
        """CAS the run to a final ``status`` (bumping its epoch) and settle its steps: a running
        step ends ``error`` (``cancelled`` when the run is), queued steps ``skipped``."""
        return Leases._settle(conn, run_id, epoch, cond, status, reason, now, bump=True) is not None

    @staticmethod
    def _settle(
        conn: Connection,
        run_id: int,
        epoch: int | None,
        cond: object,
        status: RunStatus,
        reason: str | None,
        now: datetime,
        *,
        bump: bool,
        **values: object,
    ) -> RunStatus | None:
        """The one final write of a run: CAS it (``cond``, ``epoch``) to ``status`` and settle
        its steps, in the caller's transaction; returns the status written, None when the run
        did not match. **An acknowledged cancel wins**: when ``cancel_requested_at`` is set in
        the row this UPDATE changes (read by the UPDATE itself, under the row lock, so a
        concurrent :meth:`request_cancel` either committed before and is seen here, or waits
        and then finds the run final), the run ends ``cancelled`` (reason ``cancelled``)
        whatever ``status`` was asked. The run's final event (:mod:`dockyard.store.outbox`) is
        written last, in the same transaction."""
        pending = runs.c.cancel_requested_at.is_not(None)
        cancelled = RunStatus.CANCELLED

        def unless_cancelled(value: object, instead: object):
            return value if status is cancelled else case((pending, instead), else_=value)

        stmt = update(runs).where(runs.c.id == run_id, cond)  # type: ignore[arg-type]
        if epoch is not None:
            stmt = stmt.where(runs.c.lease_epoch == epoch)
        if bump:
            values["lease_epoch"] = runs.c.lease_epoch + 1
        row = conn.execute(
            stmt.values(
                status=unless_cancelled(status.value, cancelled.value),
                status_code=unless_cancelled(status.code, cancelled.code),
                reason=unless_cancelled(reason, "cancelled"),
                finished_at=now,
                updated_at=now,
                **values,
            ).returning(runs.c.status)
        ).first()
        if row is None:
            return None
        final = RunStatus(row.status)
        conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id == run_id, run_steps.c.status == StepStatus.RUNNING.value)
            .values(
                status=(StepStatus.CANCELLED if final is RunStatus.CANCELLED else StepStatus.ERROR).value,
                finished_at=now,
            )
        )
        conn.execute(
            update(run_steps)
            .where(run_steps.c.run_id == run_id, run_steps.c.status == StepStatus.QUEUED.value)
            .values(status=StepStatus.SKIPPED.value)
        )
        # the run's final event, in this transaction (every path that ends a run comes here)
        write_events(conn, [final_event(conn, run_id)], now)
        return final

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        reason: str | None,
        *,
        epoch: int | None = None,
        has_warnings: bool = False,
        now: datetime | None = None,
    ) -> RunStatus | None:
        """End an active run (fenced by ``epoch`` when given) in one transaction: its status,
        reason, ``finished_at``, a step left running ``error``, queued steps ``skipped``.
        Returns the status written (``cancelled`` when a cancel had been requested, see
        :meth:`_settle`), or None when the run was not active (or not owned with ``epoch``)."""
        now = now or clock.now()
        with self.db.write() as conn:
            return self._settle(
                conn,
                run_id,
                epoch,
                runs.c.status.in_(ACTIVE),
                status,
                reason,
                now,
                bump=False,
                has_warnings=has_warnings,
            )

    def request_cancel(self, run_id: int, now: datetime | None = None) -> str:
        """Ask for a run to be cancelled; raises :class:`NotFoundError` for an unknown run.

        Returns ``"cancelled"`` (it was queued: now ``cancelled``, reason ``cancelled``,
        steps skipped), ``"requested"`` (it is starting/running: ``cancel_requested_at`` is
        set, kept if already set, and its worker learns it from :meth:`heartbeat_runs`; from
        then on the run can only end ``cancelled``, see :meth:`_settle`) or ``"final"``
        (already final; unchanged).
        """
        now = now or clock.now()
        with self.db.write() as conn:
            if self._end_run(conn, run_id, None, runs.c.status == QUEUED, RunStatus.CANCELLED, "cancelled", now):
                conn.execute(update(runs).where(runs.c.id == run_id).values(cancel_requested_at=now))
                return "cancelled"
            if conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status.in_(ACTIVE), runs.c.cancel_requested_at.is_(None))
                .values(cancel_requested_at=now, updated_at=now)
            ).rowcount:
                return "requested"
            status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise run_not_found(conn, run_id)
            return "requested" if status in ACTIVE else "final"

    def cancel_requested(self, run_id: int) -> bool:
        """Whether a cancel of the run was requested (read by a foreground run's loop)."""
        with self.db.read() as conn:
            return conn.execute(select(runs.c.cancel_requested_at).where(runs.c.id == run_id)).scalar() is not None

    def requeue(self, run_id: int, epoch: int, now: datetime | None = None) -> bool:
        """Hand an owned run back to the queue (graceful worker shutdown); returns success.

        When the run is starting/running with ``epoch``: it becomes ``queued`` again with
        ``lease_epoch + 1`` (fencing this worker), owner, claim, heartbeat, pgid and start
        time cleared, and every step reset to ``queued`` (the next worker runs all commands
        again; node results and artifacts already stored are kept and get overwritten). If a
        cancel was pending it is ``cancelled`` instead (also a success). False, and nothing
        changed, when the caller no longer owns the run.
        """
        now = now or clock.now()
        owned = and_(runs.c.lease_epoch == epoch, runs.c.status.in_(ACTIVE))
        with self.db.write() as conn:
            if self._end_run(
                conn,
                run_id,
                None,
                and_(owned, runs.c.cancel_requested_at.is_not(None)),
                RunStatus.CANCELLED,
                "cancelled",
                now,
            ):
                return True
            queued = RunStatus.QUEUED
            changed = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, owned)
                .values(
                    status=queued.value,
                    status_code=queued.code,
                    lease_epoch=runs.c.lease_epoch + 1,
                    worker_id=None,
                    host=None,
                    pgid=None,
                    warehouse_sessions=None,
                    claimed_at=None,
                    heartbeat_at=None,
                    started_at=None,
                    updated_at=now,
                )
            ).rowcount
            if not changed:
                return False
            conn.execute(
                update(run_steps)
                .where(run_steps.c.run_id == run_id)
                .values(status=StepStatus.QUEUED.value, exit_code=None, started_at=None, finished_at=None)
            )
            return True
