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

from sqlalchemy import or_, select

from dockyard.store.base import Repository
from dockyard.store.tables import source_freshness as sf
from dockyard.store.tables import source_freshness_latest as latest_table

MAX_LIMIT = 1000
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
        query = select(sf).where(_source(source))
        if environment is not None:
            query = query.where(sf.c.environment == environment)
        if before_id is not None:
            query = query.where(sf.c.id < before_id)
        query = query.order_by(sf.c.checked_at.desc(), sf.c.id.desc()).limit(_bounded(limit))
        with self.db.read() as conn:
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
        with its source's previous status; rows already recorded (a redelivered event) are
        left as they are. Returns how many rows were new."""
        added = 0
        with self.db.write() as conn:
            for check in checks:
                values = {k: check.get(k) for k in CHECK_FIELDS}
                previous = _previous(conn, environment, values["unique_id"], values["checked_at"], (run_id, step_index))
                stmt = (
                    self.db.insert(sf)
                    .values(
                        run_id=run_id,
                        step_index=step_index,
                        environment=environment,
                        job=job,
                        previous_status=previous,
                        **values,
                    )
                    .on_conflict_do_nothing(index_elements=["run_id", "step_index", "unique_id"])
                    .returning(sf.c.id)
                )
                row = conn.execute(stmt).first()
                if row is None:
                    continue  # recorded before
                added += 1
                mark = self.db.insert(latest_table).values(
                    environment=environment,
                    unique_id=values["unique_id"],
                    freshness_id=row.id,
                    checked_at=values["checked_at"],
                )
                conn.execute(
                    mark.on_conflict_do_update(
                        index_elements=["environment", "unique_id"],
                        set_={"freshness_id": mark.excluded.freshness_id, "checked_at": mark.excluded.checked_at},
                        where=latest_table.c.checked_at <= mark.excluded.checked_at,
                    )
                )
        return added
