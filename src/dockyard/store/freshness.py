"""Source freshness history (table ``source_freshness``): one row per source and step.

Every ``dbt source freshness`` step's results are kept, each row with the status the source
had at its previous check in the same environment (``previous_status``, set when the row is
recorded): a status change is a row whose ``previous_status`` differs. Recording is
idempotent (unique run, step and source), so an event delivered twice records nothing twice.
Everything is kept (rows are small); every read is bounded, and the last check of each source
is also marked in ``source_freshness_latest`` so that :meth:`FreshnessReader.latest` (the API,
``/metrics`` scrapes, the digest) reads one row per source, not the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from dockyard.store.base import Repository
from dockyard.store.tables import source_freshness as sf
from dockyard.store.tables import source_freshness_latest as latest_table

MAX_LIMIT = 1000
CHUNK = 500  # unique ids per IN (...)
#: the columns a caller gives :meth:`Freshness.record` for each source
CHECK_FIELDS = (
    "unique_id",
    "source_name",
    "table_name",
    "status",
    "max_loaded_at",
    "snapshotted_at",
    "age_seconds",
    "warn_after",
    "error_after",
    "error",
    "checked_at",
)


@dataclass
class FreshnessRecord:
    id: int
    run_id: int
    step_index: int
    environment: str
    job: str | None
    unique_id: str
    source_name: str
    table_name: str
    status: str  # pass | warn | error | runtime error
    previous_status: str | None  # at the source's previous check in this environment
    max_loaded_at: datetime | None
    snapshotted_at: datetime | None
    age_seconds: float | None  # at the check
    warn_after: dict | None
    error_after: dict | None
    error: str | None
    checked_at: datetime


def _record(row) -> FreshnessRecord:
    return FreshnessRecord(**{k: row[k] for k in FreshnessRecord.__dataclass_fields__})


def _bounded(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def _source(ref: str):
    """A source by its unique id, ``<source>.<table>`` or table name."""
    return or_(sf.c.unique_id == ref, sf.c.source_name + "." + sf.c.table_name == ref, sf.c.table_name == ref)


class FreshnessReader(Repository):
    """Reading the freshness history."""

    def latest(self, environment: str | None = None, *, limit: int = MAX_LIMIT) -> list[FreshnessRecord]:
        """The last check of every source (per environment), by environment and unique id
        (read through ``source_freshness_latest``: one row per source, however long the history)."""
        query = select(sf).join(latest_table, latest_table.c.freshness_id == sf.c.id)
        if environment is not None:
            query = query.where(latest_table.c.environment == environment)
        query = query.order_by(latest_table.c.environment, latest_table.c.unique_id).limit(_bounded(limit))
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def history(
        self,
        source: str,
        environment: str | None = None,
        *,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[FreshnessRecord]:
        """The checks of one source (unique id, ``<source>.<table>`` or table name), newest
        first; ``before_id``: the page after the row with that id."""
        # the sources meant (few): their marked last checks, then their rows through the index
        which = select(latest_table.c.environment, latest_table.c.unique_id).join(
            sf, sf.c.id == latest_table.c.freshness_id
        )
        which = which.where(_source(source))
        if environment is not None:
            which = which.where(latest_table.c.environment == environment)
        with self.db.read() as conn:
            pairs = conn.execute(which.limit(MAX_LIMIT)).all()
            if not pairs:
                return []
            query = select(sf).where(or_(*(and_(sf.c.environment == e, sf.c.unique_id == u) for e, u in pairs)))
            if before_id is not None:
                query = query.where(sf.c.id < before_id)
            query = query.order_by(sf.c.checked_at.desc(), sf.c.id.desc()).limit(_bounded(limit))
            return [_record(r) for r in conn.execute(query).mappings()]

    def step(self, run_id: int, step_index: int) -> list[FreshnessRecord]:
        """The rows one step recorded, by unique id."""
        query = (
            select(sf)
            .where(sf.c.run_id == run_id, sf.c.step_index == step_index)
            .order_by(sf.c.unique_id)
            .limit(MAX_LIMIT * 10)
        )
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def previous_status(self, environment: str, unique_id: str, checked_at: datetime, *, exclude: tuple[int, int]):
        """The status of the source's last check in ``environment`` at or before ``checked_at``
        other than the one of run and step ``exclude``; None when it was never checked."""
        with self.db.read() as conn:
            return _previous(conn, environment, unique_id, checked_at, exclude)


def _previous(conn, environment: str, unique_id: str, checked_at: datetime, exclude: tuple[int, int]) -> str | None:
    return conn.execute(
        select(sf.c.status)
        .where(
            sf.c.environment == environment,
            sf.c.unique_id == unique_id,
            sf.c.checked_at <= checked_at,
            or_(sf.c.run_id != exclude[0], sf.c.step_index != exclude[1]),
        )
        .order_by(sf.c.checked_at.desc(), sf.c.id.desc())
        .limit(1)
    ).scalar()


class Freshness(FreshnessReader):
    """The freshness history: reads and recording a step's results."""

    def record(
        self, run_id: int, step_index: int, environment: str, job: str | None, checks: list[dict[str, Any]]
    ) -> int:
        """Record one step's checks (dicts of :data:`CHECK_FIELDS`) in one transaction, each
        with its source's previous status, and mark them the sources' last checks; rows already
        recorded (a redelivered event) are left as they are. Returns how many rows were new.
        A few statements per step, whatever its number of sources."""
        with self.db.write() as conn:
            step = (sf.c.run_id == run_id, sf.c.step_index == step_index)
            seen = set(conn.execute(select(sf.c.unique_id).where(*step)).scalars())
            new: dict[str, dict[str, Any]] = {}
            for check in checks:
                if check["unique_id"] not in seen:
                    new.setdefault(check["unique_id"], {k: check.get(k) for k in CHECK_FIELDS})
            if not new:
                return 0
            marked = _marked(conn, environment, list(new))
            rows = []
            for uid, values in new.items():
                status, at = marked.get(uid, (None, None))
                if at is not None and at > values["checked_at"]:  # a late, older check
                    status = _previous(conn, environment, uid, values["checked_at"], (run_id, step_index))
                rows.append(
                    {**values, "run_id": run_id, "step_index": step_index, "environment": environment, "job": job}
                    | {"previous_status": status}
                )
            insert = self.db.insert(sf).on_conflict_do_nothing(index_elements=["run_id", "step_index", "unique_id"])
            conn.execute(insert, rows)
            ids = conn.execute(select(sf.c.id, sf.c.unique_id).where(*step)).all()
            mark = self.db.insert(latest_table)
            conn.execute(
                mark.on_conflict_do_update(
                    index_elements=["environment", "unique_id"],
                    set_={"freshness_id": mark.excluded.freshness_id, "checked_at": mark.excluded.checked_at},
                    where=latest_table.c.checked_at <= mark.excluded.checked_at,
                ),
                [
                    {
                        "environment": environment,
                        "unique_id": uid,
                        "freshness_id": row_id,
                        "checked_at": new[uid]["checked_at"],
                    }
                    for row_id, uid in ids
                    if uid in new
                ],
            )
        return len(new)


def _marked(conn, environment: str, unique_ids: list[str]) -> dict[str, tuple[str, datetime]]:
    """unique id -> (status, checked_at) of the sources' marked last checks in ``environment``."""
    out: dict[str, tuple[str, datetime]] = {}
    for start in range(0, len(unique_ids), CHUNK):
        query = (
            select(latest_table.c.unique_id, sf.c.status, latest_table.c.checked_at)
            .join(sf, sf.c.id == latest_table.c.freshness_id)
            .where(
                latest_table.c.environment == environment,
                latest_table.c.unique_id.in_(unique_ids[start : start + CHUNK]),
            )
        )
        out.update({uid: (status, at) for uid, status, at in conn.execute(query)})
    return out
