"""Cron fires in batches: many jobs' due fires, their runs and their schedule state, in one
transaction per batch.

:meth:`FireOps.enqueue_fires` does for a batch what :meth:`Queue.enqueue` does for one
fire, with a fixed number of statements whatever the batch size:

* the fires are inserted with ``ON CONFLICT (job_id, fire_key) DO NOTHING RETURNING``: a
  fire another scheduler (or this one before a crash) already recorded comes back as a
  duplicate and changes nothing, so every fire makes exactly one run;
* a job that does not allow overlap folds its new fires into its queued run (same
  environment and commands, no overrides, no git ref) when it has one, else its first new
  fire creates a run the others fold into;
* the jobs' ``schedule_state`` moves forward (never backwards) in the same transaction, so
  a crash leaves each job either wholly fired and recorded or untouched: the next tick, or
  the other scheduler, fires what is missing.

On PostgreSQL the batch first takes the per-job enqueue advisory locks of
:meth:`Queue.enqueue`, in job id order (two schedulers' batches then wait for each other
instead of deadlocking); on SQLite the ``BEGIN IMMEDIATE`` write lock serialises batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, case, insert, select, text, update

from dockyard import clock
from dockyard.domain import RunStatus, StepStatus
from dockyard.store.base import Repository
from dockyard.store.outbox import write_events
from dockyard.store.tables import fires, run_steps, runs, schedule_state
from dockyard.store.writes import queued_event

QUEUED = RunStatus.QUEUED.value
ENQUEUE_LOCK_NS = 0x646B7971  # the namespace of Queue.enqueue's per-job locks


@dataclass
class JobFires:
    """One job's due cron fires (oldest first) and its new ``schedule_state.last_fire_at``."""

    job_id: int
    job_name: str
    environment: str
    commands: list[str]
    priority: int
    coalesce: bool
    times: list[datetime]
    last_fire: datetime


@dataclass
class BatchResult:
    created: list[int] = field(default_factory=list)  # new runs, in job id order
    coalesced: list[int] = field(default_factory=list)  # queued runs that new fires folded into
    duplicates: int = 0  # fires that had already fired


def fire_key(at: datetime) -> str:
    return "cron:" + at.strftime("%Y-%m-%dT%H:%M:%SZ")


class FireOps(Repository):
    def last_fires(self, job_ids: list[int]) -> dict[int, datetime]:
        """``schedule_state.last_fire_at`` of the given jobs (jobs never seen are absent)."""
        if not job_ids:
            return {}
        with self.db.read() as conn:
            return dict(
                conn.execute(
                    select(schedule_state.c.job_id, schedule_state.c.last_fire_at).where(
                        schedule_state.c.job_id.in_(sorted(set(job_ids)))
                    )
                ).all()
            )

    def advance_schedules(self, job_ids: list[int], at: datetime) -> None:
        """Move the schedule state of jobs that had nothing due to ``at`` (never backwards),
        in one statement: what a tick does for every job between two fires."""
        if not job_ids:
            return
        with self.db.write() as conn:
            conn.execute(
                update(schedule_state)
                .where(schedule_state.c.job_id.in_(sorted(set(job_ids))), schedule_state.c.last_fire_at < at)
                .values(last_fire_at=at, updated_at=clock.now())
            )

    def enqueue_fires(self, batch: list[JobFires]) -> BatchResult:
        """Record the fires of ``batch`` (one entry per job), queue their runs and move the
        jobs' schedule state, in one transaction of a fixed number of statements."""
        batch = sorted(batch, key=lambda j: j.job_id)
        result = BatchResult()
        if not batch:
            return result
        now = clock.now()
        by_id = {j.job_id: j for j in batch}
        wanted = [
            {"job_id": j.job_id, "fire_key": fire_key(at), "scheduled_for": at, "created_at": now}
            for j in batch
            for at in j.times
        ]
        with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                conn.execute(
                    text(
                        "SELECT pg_advisory_xact_lock(CAST(:ns AS integer), j) "
                        "FROM (SELECT unnest(CAST(:ids AS integer[])) AS j ORDER BY 1) AS locked"
                    ),
                    {"ns": ENQUEUE_LOCK_NS, "ids": sorted(by_id)},
                )
            new: dict[int, list[tuple[datetime, int]]] = {}  # job id -> [(time, fire id)] inserted
            if wanted:
                stmt = (
                    self.db.insert(fires)
                    .on_conflict_do_nothing(index_elements=["job_id", "fire_key"])
                    .returning(fires.c.id, fires.c.job_id, fires.c.scheduled_for)
                )
                for row in conn.execute(stmt, wanted):
                    new.setdefault(row.job_id, []).append((row.scheduled_for, row.id))
            result.duplicates = len(wanted) - sum(len(v) for v in new.values())
            links: dict[int, int | None] = {}  # fire id -> run id (None: the new run of its job)
            folded: dict[int, int] = {}  # queued run id -> fires folded into it
            targets = self._queued_targets(conn, [by_id[j] for j in new if by_id[j].coalesce])
            if folded_into := {targets[j]: len(new[j]) for j in new if j in targets}:
                prio = {targets[j]: by_id[j].priority for j in new if j in targets}
                changed = set(
                    conn.execute(
                        update(runs)
                        .where(runs.c.id.in_(sorted(folded_into)), runs.c.status == QUEUED)
                        .values(
                            coalesced=runs.c.coalesced + case(folded_into, value=runs.c.id),
                            priority=case(
                                (runs.c.priority > case(prio, value=runs.c.id), runs.c.priority),
                                else_=case(prio, value=runs.c.id),
                            ),
                            not_before=None,
                            updated_at=now,
                        )
                        .returning(runs.c.id)
                    ).scalars()
                )  # not changed: a worker claimed it meanwhile
                folded = {run_id: n for run_id, n in folded_into.items() if run_id in changed}
            rows = []
            for job_id, inserted in sorted(new.items()):
                job, inserted = by_id[job_id], sorted(inserted)
                if targets.get(job_id) in folded:
                    links.update({fire_id: targets[job_id] for _, fire_id in inserted})
                    continue
                # a job that folds its fires gets one run for all of them, else one per fire
                starts = inserted[:1] if job.coalesce else inserted
                rows += [_run_row(job, at, now, coalesced=len(inserted) - 1 if job.coalesce else 0) for at, _ in starts]
                links.update({fire_id: None for _, fire_id in inserted})
            if rows:
                # (job, scheduled time) is unique among the new runs: it maps them to their ids
                made = conn.execute(insert(runs).returning(runs.c.id, runs.c.job_id, runs.c.scheduled_for), rows).all()
                run_of = {(m.job_id, m.scheduled_for): m.id for m in made}
                conn.execute(
                    insert(run_steps),
                    [
                        {"run_id": m.id, "index": i, "command": c, "status": StepStatus.QUEUED.value}
                        for m in made
                        for i, c in enumerate(by_id[m.job_id].commands, start=1)
                    ],
                )
                for job_id, inserted in new.items():
                    if by_id[job_id].coalesce:
                        run_id = run_of.get((job_id, min(inserted)[0]))
                        if run_id is not None:
                            links.update({fire_id: run_id for _, fire_id in inserted})
                    else:
                        links.update({fire_id: run_of[(job_id, at)] for at, fire_id in inserted})
                result.created = sorted(m.id for m in made)
            result.coalesced = sorted(folded)
            links = {fire_id: run_id for fire_id, run_id in links.items() if run_id is not None}
            if links:  # one statement run for many rows (psycopg: one pipeline, the query converted once)
                conn.execute(
                    update(fires).where(fires.c.id == bindparam("fire_id")).values(run_id=bindparam("run")),
                    [{"fire_id": f, "run": r} for f, r in sorted(links.items())],
                )
            state = self.db.insert(schedule_state)
            state = state.on_conflict_do_update(
                index_elements=["job_id"],
                set_={"last_fire_at": state.excluded.last_fire_at, "updated_at": state.excluded.updated_at},
                where=schedule_state.c.last_fire_at < state.excluded.last_fire_at,
            )
            conn.execute(state, [{"job_id": j.job_id, "last_fire_at": j.last_fire, "updated_at": now} for j in batch])
            if rows:  # the new runs' run.queued events, last (see dockyard.store.outbox)
                by_fire = {(r["job_id"], r["scheduled_for"]): r for r in rows}
                events = [queued_event(m.id, by_fire[(m.job_id, m.scheduled_for)], QUEUED_STATUS) for m in made]
                write_events(conn, events, now)
        return result

    @staticmethod
    def _queued_targets(conn, jobs: list[JobFires]) -> dict[int, int]:
        """job id -> the queued run (oldest first) that the job's new fires fold into: not a
        retry, same environment and commands, no overrides, no git ref."""
        if not jobs:
            return {}
        by_id = {j.job_id: j for j in jobs}
        candidates = conn.execute(
            select(runs.c.id, runs.c.job_id, runs.c.environment)
            .where(
                runs.c.job_id.in_(sorted(by_id)),
                runs.c.status == QUEUED,
                runs.c.trigger != "retry",
                runs.c.overrides.is_(None),
                runs.c.git_sha.is_(None),
                runs.c.git_branch.is_(None),
            )
            .order_by(runs.c.id)
        ).all()
        candidates = [c for c in candidates if c.environment == by_id[c.job_id].environment]
        commands: dict[int, list[str]] = {}
        if candidates:
            for run_id, command in conn.execute(
                select(run_steps.c.run_id, run_steps.c.command)
                .where(run_steps.c.run_id.in_([c.id for c in candidates]))
                .order_by(run_steps.c.run_id, run_steps.c["index"])
            ):
                commands.setdefault(run_id, []).append(command)
        targets: dict[int, int] = {}
        for c in candidates:
            if c.job_id not in targets and commands.get(c.id, []) == list(by_id[c.job_id].commands):
                targets[c.job_id] = int(c.id)
        return targets


QUEUED_STATUS = RunStatus.QUEUED


def _run_row(job: JobFires, at: datetime, now: datetime, *, coalesced: int) -> dict:
    """A queued schedule run; the columns left out take their defaults (``has_warnings``
    false, ``attempt`` 1, ``lease_epoch`` 0, no retry_of, overrides, git ref or not_before),
    which keeps the multi-row INSERT small."""
    queued = RunStatus.QUEUED
    return {
        "job_id": job.job_id,
        "job_name": job.job_name,
        "environment": job.environment,
        "status": queued.value,
        "status_code": queued.code,
        "trigger": "schedule",
        "cause": f"Scheduled for {at.isoformat()}",
        "scheduled_for": at,
        "priority": job.priority,
        "created_at": now,
        "updated_at": now,
        "queued_at": now,
        "coalesced": coalesced,
    }
