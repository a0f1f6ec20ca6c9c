"""Write side of the run store: runs, steps, node results and artifacts.

Every method that a worker calls while it runs a claimed run takes ``epoch``: when given,
the same transaction first checks that the run is still starting/running with that lease
epoch (see :func:`dockyard.store.base.fence`) and raises :class:`dockyard.errors.FencedError`,
writing nothing, when it is not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, update
from sqlalchemy.engine import Connection

from dockyard import clock
from dockyard import events as ev
from dockyard.domain import FAILED_STATUSES, ArtifactRef, NodeResult, RunRecord, RunStatus, StepResult, StepStatus
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store import records as rec
from dockyard.store.base import Repository, fence, run_not_found
from dockyard.store.outbox import EventRow, final_event, lease_epoch, load_run, run_event, write_events
from dockyard.store.tables import artifacts, node_results, pr_number_of, run_steps, runs

TRIGGERS = ("schedule", "manual", "api", "job_completion", "retry", "ci")
TRANSITION_FIELDS = frozenset(
    {"reason", "has_warnings", "started_at", "finished_at", "artifacts_dir", "worker_id", "heartbeat_at"}
)
RUN_FIELDS = frozenset(c.name for c in runs.columns) - {"id", "status", "status_code"}
BATCH = 500  # rows per multi-row upsert


class RunWrites(Repository):
    """Writes of runs, steps, nodes and artifacts (part of :class:`dockyard.store.runs.Runs`)."""

    # -- runs ------------------------------------------------------------------
    def create_run(
        self,
        job_id: int | None,
        job_name: str,
        environment: str,
        commands: list[str],
        *,
        trigger: str = "manual",
        cause: str | None = None,
        status: RunStatus = RunStatus.QUEUED,
        scheduled_for: datetime | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
        priority: int = 0,
        overrides: dict | None = None,
        git_sha: str | None = None,
        git_branch: str | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Insert a run and its steps (all queued) in one transaction; returns the run id."""
        with self.db.write() as conn:
            return self.insert_run(
                conn,
                job_id,
                job_name,
                environment,
                commands,
                trigger=trigger,
                cause=cause,
                status=status,
                scheduled_for=scheduled_for,
                attempt=attempt,
                retry_of=retry_of,
                priority=priority,
                overrides=overrides,
                git_sha=git_sha,
                git_branch=git_branch,
                not_before=not_before,
            )

    @staticmethod
    def insert_run(
        conn: Connection,
        job_id: int | None,
        job_name: str,
        environment: str,
        commands: list[str],
        *,
        trigger: str,
        status: RunStatus | str = RunStatus.QUEUED,
        overrides: dict | None = None,
        now: datetime | None = None,
        **values: Any,
    ) -> int:
        if trigger not in TRIGGERS:
            raise DockyardError(f"Unknown run trigger {trigger!r}", hint="use one of " + ", ".join(TRIGGERS))
        status = rec.run_status(status)
        now = now or clock.now()
        values = dict(
            values,
            job_id=job_id,
            job_name=job_name,
            environment=environment,
            status=status.value,
            status_code=status.code,
            has_warnings=False,
            trigger=trigger,
            overrides=rec.jsonable(overrides),
            pr_number=pr_number_of(overrides),
            created_at=now,
            updated_at=now,
            queued_at=now,
            lease_epoch=0,
            coalesced=0,
        )
        run_id = conn.execute(insert(runs).values(**values)).inserted_primary_key[0]
        if commands:
            conn.execute(
                insert(run_steps),
                [
                    {"run_id": run_id, "index": i, "command": c, "status": StepStatus.QUEUED.value}
                    for i, c in enumerate(commands, start=1)
                ],
            )
        write_events(conn, [queued_event(int(run_id), values, status)], now)
        return int(run_id)

    def transition_run(
        self,
        run_id: int,
        to: RunStatus,
        *,
        expected: Iterable[RunStatus] | None = None,
        epoch: int | None = None,
        **fields: Any,
    ) -> bool:
        """Compare-and-set the run status; returns whether the run changed.

        ``expected`` limits the statuses the run may currently have, ``epoch`` the lease
        epoch it must have. ``fields``: reason, has_warnings, started_at, finished_at,
        artifacts_dir, worker_id, heartbeat_at.
        """
        bad = set(fields) - TRANSITION_FIELDS
        if bad:
            raise TypeError(f"transition_run() got unsupported fields: {', '.join(sorted(bad))}")
        to = rec.run_status(to)
        stmt = update(runs).where(runs.c.id == run_id)
        if expected is not None:
            stmt = stmt.where(runs.c.status.in_([rec.run_status(s).value for s in expected]))
        if epoch is not None:
            stmt = stmt.where(runs.c.lease_epoch == epoch)
        stmt = stmt.values(status=to.value, status_code=to.code, updated_at=clock.now(), **fields)
        with self.db.write() as conn:
            changed = conn.execute(stmt).rowcount == 1
            if changed and to is RunStatus.RUNNING:
                key = ev.started_key(run_id, lease_epoch(conn, run_id))
                write_events(conn, [run_event(conn, run_id, ev.RunEvent.STARTED, key)])
            elif changed and to.is_final:  # not a path dockyard takes (see finish_run), but never silent
                write_events(conn, [final_event(conn, run_id)])
            return changed

    def set_run_fields(self, run_id: int, *, epoch: int | None = None, **fields: Any) -> None:
        """Update columns other than the status; raises :class:`NotFoundError`.

        With ``epoch``: fenced (raises :class:`FencedError` unless the caller owns the run).
        """
        bad = set(fields) - RUN_FIELDS
        if bad:
            raise TypeError(f"set_run_fields() got unsupported fields: {', '.join(sorted(bad))}")
        if "overrides" in fields:
            fields["overrides"] = rec.jsonable(fields["overrides"])
            fields["pr_number"] = pr_number_of(fields["overrides"])
        stmt = update(runs).where(runs.c.id == run_id).values(updated_at=clock.now(), **fields)
        with self.db.write() as conn:
            fence(conn, run_id, epoch)
            if conn.execute(stmt).rowcount == 0:
                raise run_not_found(conn, run_id)

    def set_run_pgid(self, run_id: int, epoch: int, pgid: int | None) -> None:
        """Record the dbt process group of an owned run (fenced), so a reaper can kill it."""
        self.set_run_fields(run_id, epoch=epoch, pgid=pgid)

    # -- steps -----------------------------------------------------------------
    def start_step(self, run_id: int, index: int, started_at: datetime, *, epoch: int | None = None) -> None:
        """Mark a step running (fenced when ``epoch`` is given)."""
        self._update_step(run_id, index, epoch, status=StepStatus.RUNNING.value, started_at=started_at)

    def finish_step(
        self,
        run_id: int,
        index: int,
        status: StepStatus,
        exit_code: int | None,
        finished_at: datetime,
        log_path: str | None = None,
        *,
        epoch: int | None = None,
    ) -> None:
        """Record a step's outcome (fenced when ``epoch`` is given)."""
        values: dict[str, Any] = {
            "status": rec.step_status(status).value,
            "exit_code": exit_code,
            "finished_at": finished_at,
        }
        if log_path is not None:
            values["log_path"] = log_path
        self._update_step(run_id, index, epoch, event=True, **values)

    def skip_steps(
        self, run_id: int, from_index: int, status: StepStatus = StepStatus.SKIPPED, *, epoch: int | None = None
    ) -> int:
        """Mark steps ``from_index`` onwards that have not finished; returns how many (fenced with ``epoch``)."""
        unfinished = [StepStatus.QUEUED.value, StepStatus.RUNNING.value]
        stmt = (
            update(run_steps)
            .where(run_steps.c.run_id == run_id, run_steps.c["index"] >= from_index, run_steps.c.status.in_(unfinished))
            .values(status=rec.step_status(status).value)
        )
        with self.db.write() as conn:
            fence(conn, run_id, epoch)
            return conn.execute(stmt).rowcount

    def _update_step(self, run_id: int, index: int, epoch: int | None, *, event: bool = False, **values: Any) -> None:
        """``event``: the step finished; its ``step.finished`` event is written in the same transaction."""
        stmt = update(run_steps).where(run_steps.c.run_id == run_id, run_steps.c["index"] == index).values(**values)
        with self.db.write() as conn:
            fence(conn, run_id, epoch)
            if conn.execute(stmt).rowcount == 0:
                raise NotFoundError(
                    f"Step {index} of run {run_id} not found", hint="steps are created with the run, numbered from 1"
                )
            if event:
                key = ev.step_key(run_id, index, lease_epoch(conn, run_id))
                step = StepResult(index, "")
                write_events(conn, [run_event(conn, run_id, ev.RunEvent.STEP_FINISHED, key, step=step)])

    # -- nodes and artifacts ---------------------------------------------------
    def upsert_nodes(
        self, run_id: int, step_index: int, nodes: Sequence[NodeResult], *, epoch: int | None = None
    ) -> None:
        """Record node events; a later event fills fields without erasing earlier ones.

        Fenced when ``epoch`` is given (also when ``nodes`` is empty: the check still runs).
        """
        merged: dict[str, dict[str, Any]] = {}
        for node in nodes:
            row = rec.node_row(node)
            old = merged.get(node.unique_id)
            merged[node.unique_id] = rec.merge_node_rows(old, row) if old else row
        if not merged and epoch is None:
            return
        stmt = self.db.insert(node_results)
        ex, cur = stmt.excluded, node_results.c
        set_: dict[str, Any] = {}
        for name in rec.NODE_FIELDS:
            if name == "unique_id":
                continue
            if name == "status":  # "started" never replaces a final status
                set_[name] = case(
                    (or_(ex.status == "", and_(ex.status == "started", cur.status != "")), cur.status), else_=ex.status
                )
            elif name in rec.NODE_TEXT_FIELDS:
                set_[name] = func.coalesce(func.nullif(ex[name], ""), cur[name])
            else:
                set_[name] = func.coalesce(ex[name], cur[name])
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "step_index", "unique_id"], set_=set_)
        rows = [dict(row, run_id=run_id, step_index=step_index) for row in merged.values()]
        failed = [n for n in nodes if n.status in FAILED_STATUSES]
        with self.db.write() as conn:
            fence(conn, run_id, epoch)
            for start in range(0, len(rows), BATCH):
                conn.execute(stmt, rows[start : start + BATCH])
            if failed:  # node.failed, once per node and attempt (the first failure event of it)
                epoch_now = lease_epoch(conn, run_id)
                run, _ = load_run(conn, run_id)
                seen: set[str] = set()
                events = []
                for node in failed:
                    if node.unique_id in seen:
                        continue
                    seen.add(node.unique_id)
                    node = dataclasses.replace(node, step_index=step_index, message=rec.node_row(node)["message"])
                    key = ev.node_key(run_id, step_index, node.unique_id, epoch_now)
                    events.append(run_event(conn, run_id, ev.RunEvent.NODE_FAILED, key, node=node, run=run))
                write_events(conn, events)

    def add_artifacts(self, run_id: int, refs: Sequence[ArtifactRef], *, epoch: int | None = None) -> None:
        """Record artifact files (upsert by run, step and name); fenced when ``epoch`` is given."""
        rows = {
            (r.step_index, r.name): {
                "run_id": run_id,
                "step_index": r.step_index,
                "name": r.name,
                "path": r.path,
                "size": r.size,
                "sha256": r.sha256,
            }
            for r in refs
        }
        if not rows and epoch is None:
            return
        stmt = self.db.insert(artifacts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "step_index", "name"],
            set_={c: stmt.excluded[c] for c in ("path", "size", "sha256")},
        )
        with self.db.write() as conn:
            fence(conn, run_id, epoch)
            if rows:
                conn.execute(stmt, list(rows.values()))


def queued_event(run_id: int, values: dict[str, Any], status: RunStatus) -> EventRow:
    """``run.queued`` of a run just inserted with ``values`` (its columns)."""
    run = RunRecord(
        id=run_id,
        job_id=values.get("job_id"),
        job=values["job_name"],
        environment=values["environment"],
        status=status,
        trigger=values["trigger"],
        cause=values.get("cause"),
        created_at=values.get("created_at"),
        scheduled_for=values.get("scheduled_for"),
        attempt=values.get("attempt") or 1,
        retry_of=values.get("retry_of"),
    )
    return EventRow(ev.queued_key(run_id), ev.RunEvent.QUEUED, run_id, ev.run_payload(run).to_dict())
