"""The run queue: enqueueing (with exactly-once schedule fires and coalescing) and claiming.

How the guarantees are kept:

* **Exactly-once fires.** :meth:`Queue.enqueue` inserts ``(job_id, fire_key)`` into
  ``fires`` with ``ON CONFLICT DO NOTHING`` in the same transaction that creates (or
  coalesces into) the run; a second scheduler, or a restarted one, finds the row and gets
  ``duplicate_fire`` back without touching anything.
* **Limits under concurrent claimers.** :meth:`Queue.claim` counts active runs and
  picks a candidate while holding ``pg_advisory_xact_lock(CLAIM_LOCK_KEY)`` on PostgreSQL
  (READ COMMITTED, so each claimer sees the previous one's commit) or the ``BEGIN
  IMMEDIATE`` write lock on SQLite. The candidate row is read ``FOR UPDATE SKIP LOCKED`` so
  a row being cancelled or coalesced into is skipped rather than waited for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.engine import Connection

from dockyard import clock
from dockyard.domain import RunStatus
from dockyard.store import records as rec
from dockyard.store.base import ACTIVE, Database
from dockyard.store.fires import FireOps
from dockyard.store.tables import fires, run_steps, runs, schedule_state
from dockyard.store.triggers import TriggerOps
from dockyard.store.writes import RunWrites

CLAIM_LOCK_KEY = 0x646F636B79717565  # "dockyque": serialises the limit check of claims
ENQUEUE_LOCK_NS = 0x646B7971  # "dkyq": pg_advisory_xact_lock(ENQUEUE_LOCK_NS, job_id)
QUEUED = RunStatus.QUEUED.value


@dataclass
class EnqueueResult:
    """What :meth:`Queue.enqueue` did.

    ``created``: a new run was inserted; ``coalesced``: the trigger was folded into the
    job's already-queued run ``run_id``; ``duplicate_fire``: ``fire_key`` had already fired
    (``run_id`` is the run it produced, nothing was changed).
    """

    run_id: int | None
    created: bool
    coalesced: bool
    duplicate_fire: bool


@dataclass
class Claim:
    """A run a worker now owns: every write for it must pass ``epoch``."""

    run_id: int
    epoch: int
    job_id: int | None
    job_name: str
    environment: str
    attempt: int
    commands: list[str]
    overrides: dict | None


class Queue(FireOps, TriggerOps):
    """The queue repository: enqueue, claim, cron fires (:mod:`~dockyard.store.fires`) and
    completion triggers (:mod:`~dockyard.store.triggers`). A new run is inserted through the
    runs repository it is given."""

    def __init__(self, db: Database, runs: RunWrites):
        super().__init__(db)
        self.runs = runs

    def enqueue(
        self,
        job_id: int,
        job_name: str,
        environment: str,
        commands: list[str],
        *,
        trigger: str,
        cause: str | None = None,
        scheduled_for: datetime | None = None,
        fire_key: str | None = None,
        priority: int = 0,
        attempt: int = 1,
        retry_of: int | None = None,
        overrides: dict | None = None,
        git_sha: str | None = None,
        git_branch: str | None = None,
        not_before: datetime | None = None,
        coalesce: bool = True,
    ) -> EnqueueResult:
        """Queue a run of a job, in one transaction.

        1. With ``fire_key`` (e.g. ``"cron:2026-03-08T07:30:00Z"``): record the fire; if
           ``(job_id, fire_key)`` already fired, return ``duplicate_fire`` and change nothing.
        2. With ``coalesce`` (and ``trigger != "retry"``): if the job already has a queued,
           non-retry run with the same environment, commands, overrides and git ref, bump its
           ``coalesced`` count (its priority becomes the higher of the two and its
           ``not_before`` the earlier) and link the fire to it.
        3. Otherwise create a queued run (steps queued) and link the fire to it.

        On PostgreSQL enqueues of one job are serialised by an advisory lock, so two
        concurrent triggers cannot both miss the queued run they should coalesce into.
        """
        now = clock.now()
        with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(CAST(:ns AS integer), CAST(:job AS integer))"),
                    {"ns": ENQUEUE_LOCK_NS, "job": job_id},
                )
            fire_id = None
            if fire_key is not None:
                stmt = (
                    self.db.insert(fires)
                    .values(job_id=job_id, fire_key=fire_key, scheduled_for=scheduled_for, created_at=now)
                    .on_conflict_do_nothing(index_elements=["job_id", "fire_key"])
                    .returning(fires.c.id)
                )
                fire_id = conn.execute(stmt).scalar()
                if fire_id is None:
                    existing = conn.execute(
                        select(fires.c.run_id).where(fires.c.job_id == job_id, fires.c.fire_key == fire_key)
                    ).scalar()
                    return EnqueueResult(existing, False, False, True)
            if coalesce and trigger != "retry":
                run_id = self._coalesce(
                    conn, job_id, environment, commands, overrides, git_sha, git_branch, priority, not_before, now
                )
                if run_id is not None:
                    self._link_fire(conn, fire_id, run_id)
                    return EnqueueResult(run_id, False, True, False)
            run_id = self.runs.insert_run(
                conn,
                job_id,
                job_name,
                environment,
                commands,
                trigger=trigger,
                cause=cause,
                scheduled_for=scheduled_for,
                attempt=attempt,
                retry_of=retry_of,
                priority=priority,
                overrides=overrides,
                git_sha=git_sha,
                git_branch=git_branch,
                not_before=not_before,
                now=now,
            )
            self._link_fire(conn, fire_id, run_id)
            return EnqueueResult(run_id, True, False, False)

    def _coalesce(
        self,
        conn: Connection,
        job_id: int,
        environment: str,
        commands: list[str],
        overrides: dict | None,
        git_sha: str | None,
        git_branch: str | None,
        priority: int,
        not_before: datetime | None,
        now: datetime,
    ) -> int | None:
        wanted = (environment, rec.jsonable(overrides), git_sha, git_branch)
        candidates = conn.execute(
            select(
                runs.c.id,
                runs.c.environment,
                runs.c.overrides,
                runs.c.git_sha,
                runs.c.git_branch,
                runs.c.priority,
                runs.c.not_before,
            )
            .where(runs.c.job_id == job_id, runs.c.status == QUEUED, runs.c.trigger != "retry")
            .order_by(runs.c.id)
        ).all()
        for c in candidates:
            if (c.environment, c.overrides, c.git_sha, c.git_branch) != wanted:
                continue
            if _commands(conn, c.id) != list(commands):
                continue
            earliest = None if not_before is None or c.not_before is None else min(not_before, c.not_before)
            changed = conn.execute(
                update(runs)
                .where(runs.c.id == c.id, runs.c.status == QUEUED)
                .values(
                    coalesced=runs.c.coalesced + 1,
                    priority=max(priority, c.priority),
                    not_before=earliest,
                    updated_at=now,
                )
            ).rowcount
            if changed:  # 0 when a worker claimed it meanwhile (PostgreSQL)
                return int(c.id)
        return None

    @staticmethod
    def _link_fire(conn: Connection, fire_id: int | None, run_id: int) -> None:
        if fire_id is not None:
            conn.execute(update(fires).where(fires.c.id == fire_id).values(run_id=run_id))

    def claim(
        self,
        worker_id: str,
        host: str,
        *,
        global_limit: int | None = None,
        env_limits: dict[str, int] | None = None,
        overlap_jobs: set[int] | frozenset[int] = frozenset(),
        environments: list[str] | None = None,
        now: datetime | None = None,
    ) -> Claim | None:
        """Take the next runnable queued run for ``worker_id``, or ``None``.

        The run chosen is the queued one with the highest priority, then the lowest id,
        whose ``not_before`` is unset or ``<= now`` and (if ``environments`` is given) whose
        environment is listed, such that after claiming it: at most ``global_limit`` runs
        are starting/running, at most ``env_limits[env]`` in its environment, and at most
        one of its job (unless its job id is in ``overlap_jobs``). A candidate blocked by
        its environment or job does not block the ones behind it.

        The run moves queued → starting with ``lease_epoch + 1``, ``worker_id``, ``host``,
        ``claimed_at = heartbeat_at = now`` (and ``pgid`` cleared).
        """
        now = now or clock.now()
        with self.db.write(isolation="READ COMMITTED") as conn:
            if self.db.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:key AS bigint))"), {"key": CLAIM_LOCK_KEY})
            active = conn.execute(
                select(runs.c.environment, runs.c.job_id, func.count())
                .where(runs.c.status.in_(ACTIVE))
                .group_by(runs.c.environment, runs.c.job_id)
            ).all()
            if global_limit is not None and sum(n for _, _, n in active) >= global_limit:
                return None
            per_env: Counter[str] = Counter()
            for env, _, n in active:
                per_env[env] += n
            full = [env for env, limit in (env_limits or {}).items() if per_env[env] >= limit]
            blocked = {job for _, job, _ in active if job is not None} - set(overlap_jobs)
            conds: list[Any] = [runs.c.status == QUEUED, or_(runs.c.not_before.is_(None), runs.c.not_before <= now)]
            if environments is not None:
                conds.append(runs.c.environment.in_(list(environments)))
            if full:
                conds.append(runs.c.environment.not_in(full))
            if blocked:
                conds.append(or_(runs.c.job_id.is_(None), runs.c.job_id.not_in(sorted(blocked))))
            run_id = conn.execute(
                select(runs.c.id)
                .where(*conds)
                .order_by(runs.c.priority.desc(), runs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).scalar()
            if run_id is None:
                return None
            starting = RunStatus.STARTING
            row = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == QUEUED)
                .values(
                    status=starting.value,
                    status_code=starting.code,
                    lease_epoch=runs.c.lease_epoch + 1,
                    worker_id=worker_id,
                    host=host,
                    pgid=None,
                    warehouse_sessions=None,
                    claimed_at=now,
                    heartbeat_at=now,
                    updated_at=now,
                )
                .returning(
                    runs.c.lease_epoch,
                    runs.c.job_id,
                    runs.c.job_name,
                    runs.c.environment,
                    runs.c.attempt,
                    runs.c.overrides,
                )
            ).first()
            if row is None:  # pragma: no cover - the row is locked by us
                return None
            return Claim(
                run_id=int(run_id),
                epoch=row.lease_epoch,
                job_id=row.job_id,
                job_name=row.job_name,
                environment=row.environment,
                attempt=row.attempt,
                commands=_commands(conn, run_id),
                overrides=row.overrides,
            )

    # -- schedule state and fires ---------------------------------------------
    def fire_exists(self, job_id: int, fire_key: str) -> bool:
        """Whether ``(job_id, fire_key)`` has already fired."""
        with self.db.read() as conn:
            return (
                conn.execute(select(fires.c.id).where(fires.c.job_id == job_id, fires.c.fire_key == fire_key)).first()
                is not None
            )

    def last_fire(self, job_id: int) -> datetime | None:
        """The latest fire time recorded with :meth:`set_last_fire`, or ``None``."""
        with self.db.read() as conn:
            return conn.execute(select(schedule_state.c.last_fire_at).where(schedule_state.c.job_id == job_id)).scalar()

    def set_last_fire(self, job_id: int, at: datetime) -> None:
        """Record that the job's schedule fired at ``at``; never moves the time backwards."""
        stmt = self.db.insert(schedule_state).values(job_id=job_id, last_fire_at=at, updated_at=clock.now())
        stmt = stmt.on_conflict_do_update(
            index_elements=["job_id"],
            set_={"last_fire_at": stmt.excluded.last_fire_at, "updated_at": stmt.excluded.updated_at},
            where=schedule_state.c.last_fire_at < stmt.excluded.last_fire_at,
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def queue_stats(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Queue health: ``by_status`` (every status, counts), ``by_environment``
        (env → queued/starting/running counts), ``delayed`` (queued with ``not_before`` in the
        future), ``oldest_queued_at`` and ``oldest_queued_age_s`` (``None`` when nothing is queued)."""
        now = now or clock.now()
        live = (QUEUED, *ACTIVE)
        with self.db.read() as conn:
            by_status = dict(conn.execute(select(runs.c.status, func.count()).group_by(runs.c.status)).all())
            by_env: dict[str, dict[str, int]] = {}
            for env, status, n in conn.execute(
                select(runs.c.environment, runs.c.status, func.count())
                .where(runs.c.status.in_(live))
                .group_by(runs.c.environment, runs.c.status)
            ):
                by_env.setdefault(env, dict.fromkeys(live, 0))[status] = n
            delayed = conn.execute(
                select(func.count()).select_from(runs).where(runs.c.status == QUEUED, runs.c.not_before > now)
            ).scalar_one()
            oldest = conn.execute(select(func.min(runs.c.queued_at)).where(runs.c.status == QUEUED)).scalar()
        return {
            "by_status": {s.value: by_status.get(s.value, 0) for s in RunStatus},
            "by_environment": dict(sorted(by_env.items())),
            "delayed": delayed,
            "oldest_queued_at": oldest,
            "oldest_queued_age_s": None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        }


def _commands(conn: Connection, run_id: int) -> list[str]:
    return list(
        conn.execute(
            select(run_steps.c.command).where(run_steps.c.run_id == run_id).order_by(run_steps.c["index"])
        ).scalars()
    )
