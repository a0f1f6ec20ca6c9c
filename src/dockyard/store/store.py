"""The run store: the only API the rest of dockyard uses to persist jobs and runs.

Every write is one short transaction; nothing holds a connection between calls, so
the runner can call :meth:`Store.upsert_nodes` several times a second while the API
and scheduler read and write from other threads or processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dockyard import clock
from dockyard.domain import ArtifactRef, JobRecord, NodeResult, RunStatus, StepStatus
from dockyard.errors import DockyardError, NotFoundError
from dockyard.store import records as rec
from dockyard.store.engine import make_engine, mask_url, parse_url, write_options
from dockyard.store.migrations import upgrade
from dockyard.store.queries import RunQueries
from dockyard.store.tables import artifacts, environments, node_results, run_steps, runs
from dockyard.store.tables import jobs as jobs_table

TRIGGERS = ("schedule", "manual", "api", "job_completion", "retry", "ci")
TRANSITION_FIELDS = frozenset(
    {"reason", "has_warnings", "started_at", "finished_at", "artifacts_dir", "worker_id", "heartbeat_at"})
RUN_FIELDS = frozenset(c.name for c in runs.columns) - {"id", "status", "status_code"}
BATCH = 500  # rows per multi-row upsert


class Store(RunQueries):
    def __init__(self, url: str):
        self._url = parse_url(url)
        self.engine = make_engine(self._url)

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        """The store URL with any password masked (safe to print or log)."""
        return mask_url(self._url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    __str__ = __repr__

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> bool:
        """Create or upgrade the schema; a no-op (returns False) when up to date."""
        with self._guard():
            return upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with rec.translate_errors(self._url):
            yield

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard(), self.engine.connect() as conn:
            write_options(conn)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard(), self.engine.connect() as conn:
            if self.dialect == "postgresql":  # several SELECTs, one snapshot
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- environments and jobs -------------------------------------------------
    def sync_environments(self, envs: list[dict]) -> None:
        """Insert or update environments by name (absent ones are left alone)."""
        if not envs:
            return
        now = clock.now()
        rows = [{"name": e["name"], "target": e.get("target") or e["name"], "schema": e.get("schema"),
                 "threads": e.get("threads"), "created_at": now, "updated_at": now} for e in envs]
        stmt = self._insert(environments)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={c: stmt.excluded[c] for c in ("target", "schema", "threads", "updated_at")})
        with self._write() as conn:
            conn.execute(stmt, rows)

    def list_environments(self) -> list[dict]:
        with self._read() as conn:
            result = conn.execute(select(environments).order_by(environments.c.name))
            return [dict(row) for row in result.mappings()]

    def sync_jobs(self, jobs: list[dict]) -> dict[str, int]:
        """Make the jobs table match ``jobs``; returns name → id.

        A job keeps its id as long as its name stays; jobs no longer present become
        inactive (their ids and runs are kept) and come back with the same id.
        """
        names = [j["name"] for j in jobs]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise DockyardError(f"Duplicate job names: {', '.join(dupes)}", hint="job names must be unique")
        now = clock.now()
        wanted = {j["name"]: {"name": j["name"], "environment": j["environment"], "cron": j.get("cron"),
                              "timezone": j.get("timezone") or "UTC",
                              "definition": rec.jsonable(j.get("definition") or {}), "active": True}
                  for j in jobs}
        with self._write() as conn:
            conn.execute(update(jobs_table)
                         .where(jobs_table.c.active.is_(True), jobs_table.c.name.not_in(names))
                         .values(active=False, updated_at=now))
            existing = {row["name"]: row for row in conn.execute(
                select(jobs_table).where(jobs_table.c.name.in_(names))).mappings()}
            changed = [dict(row, created_at=now, updated_at=now) for name, row in wanted.items()
                       if name not in existing or any(existing[name][k] != v for k, v in row.items())]
            if changed:
                stmt = self._insert(jobs_table)
                keep = ("environment", "cron", "timezone", "definition", "active", "updated_at")
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["name"], set_={c: stmt.excluded[c] for c in keep}), changed)
            ids = dict(conn.execute(select(jobs_table.c.name, jobs_table.c.id)
                                    .where(jobs_table.c.name.in_(names))).all())
        return {name: ids[name] for name in names}

    def list_jobs(self, active_only: bool = True) -> list[JobRecord]:
        query = select(jobs_table).order_by(jobs_table.c.name)
        if active_only:
            query = query.where(jobs_table.c.active.is_(True))
        with self._read() as conn:
            return [rec.job_record(row) for row in conn.execute(query).mappings()]

    def get_job(self, id_or_name: int | str) -> JobRecord:
        """A job (active or not) by id or name; raises :class:`NotFoundError`."""
        with self._read() as conn:
            row, query = None, select(jobs_table)
            if isinstance(id_or_name, str):
                row = conn.execute(query.where(jobs_table.c.name == id_or_name)).mappings().first()
            if row is None and (isinstance(id_or_name, int) or id_or_name.isdigit()):
                row = conn.execute(query.where(jobs_table.c.id == int(id_or_name))).mappings().first()
            if row is not None:
                return rec.job_record(row)
            known = list(conn.execute(select(jobs_table.c.name).where(jobs_table.c.active.is_(True))
                                      .order_by(jobs_table.c.name).limit(11)).scalars())
        hint = ("known jobs: " + ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
                if known else "no jobs are defined yet; add them to dockyard.yml")
        raise NotFoundError(f"Job {id_or_name!r} not found", hint=hint)

    # -- runs ------------------------------------------------------------------
    def create_run(self, job_id: int | None, job_name: str, environment: str, commands: list[str], *,
                   trigger: str = "manual", cause: str | None = None,
                   status: RunStatus = RunStatus.QUEUED, scheduled_for: datetime | None = None,
                   attempt: int = 1, retry_of: int | None = None, priority: int = 0,
                   overrides: dict | None = None, git_sha: str | None = None,
                   git_branch: str | None = None) -> int:
        """Insert a run and its steps (all queued) in one transaction; returns the run id."""
        if trigger not in TRIGGERS:
            raise DockyardError(f"Unknown run trigger {trigger!r}", hint="use one of " + ", ".join(TRIGGERS))
        status = rec.run_status(status)
        now = clock.now()
        values = dict(job_id=job_id, job_name=job_name, environment=environment, status=status.value,
                      status_code=status.code, has_warnings=False, trigger=trigger, cause=cause,
                      scheduled_for=scheduled_for, attempt=attempt, retry_of=retry_of, priority=priority,
                      overrides=rec.jsonable(overrides), git_sha=git_sha, git_branch=git_branch,
                      created_at=now, updated_at=now, queued_at=now, lease_epoch=0)
        with self._write() as conn:
            run_id = conn.execute(insert(runs).values(**values)).inserted_primary_key[0]
            if commands:
                conn.execute(insert(run_steps), [
                    {"run_id": run_id, "index": i, "command": c, "status": StepStatus.QUEUED.value}
                    for i, c in enumerate(commands, start=1)])
        return int(run_id)

    def transition_run(self, run_id: int, to: RunStatus, *, expected: Iterable[RunStatus] | None = None,
                       epoch: int | None = None, **fields: Any) -> bool:
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
        with self._write() as conn:
            return conn.execute(stmt).rowcount == 1

    def set_run_fields(self, run_id: int, **fields: Any) -> None:
        """Update columns other than the status; raises :class:`NotFoundError`."""
        bad = set(fields) - RUN_FIELDS
        if bad:
            raise TypeError(f"set_run_fields() got unsupported fields: {', '.join(sorted(bad))}")
        if "overrides" in fields:
            fields["overrides"] = rec.jsonable(fields["overrides"])
        stmt = update(runs).where(runs.c.id == run_id).values(updated_at=clock.now(), **fields)
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise self._run_not_found(conn, run_id)

    # -- steps -----------------------------------------------------------------
    def start_step(self, run_id: int, index: int, started_at: datetime) -> None:
        self._update_step(run_id, index, status=StepStatus.RUNNING.value, started_at=started_at)

    def finish_step(self, run_id: int, index: int, status: StepStatus, exit_code: int | None,
                    finished_at: datetime, log_path: str | None = None) -> None:
        values: dict[str, Any] = {"status": rec.step_status(status).value, "exit_code": exit_code,
                                  "finished_at": finished_at}
        if log_path is not None:
            values["log_path"] = log_path
        self._update_step(run_id, index, **values)

    def skip_steps(self, run_id: int, from_index: int, status: StepStatus = StepStatus.SKIPPED) -> int:
        """Mark steps ``from_index`` onwards that have not finished; returns how many."""
        unfinished = [StepStatus.QUEUED.value, StepStatus.RUNNING.value]
        stmt = (update(run_steps)
                .where(run_steps.c.run_id == run_id, run_steps.c["index"] >= from_index,
                       run_steps.c.status.in_(unfinished))
                .values(status=rec.step_status(status).value))
        with self._write() as conn:
            return conn.execute(stmt).rowcount

    def _update_step(self, run_id: int, index: int, **values: Any) -> None:
        stmt = (update(run_steps).where(run_steps.c.run_id == run_id, run_steps.c["index"] == index)
                .values(**values))
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise NotFoundError(f"Step {index} of run {run_id} not found",
                                    hint="steps are created with the run, numbered from 1")

    # -- nodes and artifacts ---------------------------------------------------
    def upsert_nodes(self, run_id: int, step_index: int, nodes: Sequence[NodeResult]) -> None:
        """Record node events; a later event fills fields without erasing earlier ones."""
        merged: dict[str, dict[str, Any]] = {}
        for node in nodes:
            row = rec.node_row(node)
            old = merged.get(node.unique_id)
            merged[node.unique_id] = rec.merge_node_rows(old, row) if old else row
        if not merged:
            return
        stmt = self._insert(node_results)
        ex, cur = stmt.excluded, node_results.c
        set_: dict[str, Any] = {}
        for name in rec.NODE_FIELDS:
            if name == "unique_id":
                continue
            if name == "status":  # "started" never replaces a final status
                set_[name] = case((or_(ex.status == "", and_(ex.status == "started", cur.status != "")),
                                   cur.status), else_=ex.status)
            elif name in rec.NODE_TEXT_FIELDS:
                set_[name] = func.coalesce(func.nullif(ex[name], ""), cur[name])
            else:
                set_[name] = func.coalesce(ex[name], cur[name])
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "step_index", "unique_id"], set_=set_)
        rows = [dict(row, run_id=run_id, step_index=step_index) for row in merged.values()]
        with self._write() as conn:
            for start in range(0, len(rows), BATCH):
                conn.execute(stmt, rows[start:start + BATCH])

    def add_artifacts(self, run_id: int, refs: Sequence[ArtifactRef]) -> None:
        """Record artifact files (upsert by run, step and name)."""
        rows = {(r.step_index, r.name): {"run_id": run_id, "step_index": r.step_index, "name": r.name,
                                         "path": r.path, "size": r.size, "sha256": r.sha256}
                for r in refs}
        if not rows:
            return
        stmt = self._insert(artifacts)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "step_index", "name"],
                                          set_={c: stmt.excluded[c] for c in ("path", "size", "sha256")})
        with self._write() as conn:
            conn.execute(stmt, list(rows.values()))
