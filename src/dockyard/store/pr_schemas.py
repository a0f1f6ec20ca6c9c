"""The warehouse schemas pull-request builds wrote (table ``pr_schemas``), until dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from dockyard import clock
from dockyard.store.base import Repository
from dockyard.store.tables import pr_schemas

STATES = ("open", "closed", "dropped")


@dataclass
class PrSchema:
    id: int
    environment: str
    pr_number: int
    schema: str
    head_sha: str | None
    state: str  # open | closed | dropped
    created_at: datetime
    updated_at: datetime  # the last build (or state change)
    dropped_at: datetime | None


def _record(row) -> PrSchema:
    return PrSchema(**{k: row[k] for k in PrSchema.__dataclass_fields__})


def _of(environment: str, pr_number: int) -> tuple:
    """The WHERE clauses of one pull request's record."""
    return (pr_schemas.c.environment == environment, pr_schemas.c.pr_number == pr_number)


class PrSchemas(Repository):
    def built(self, environment: str, pr_number: int, schema: str, head_sha: str | None = None) -> PrSchema:
        """Record a build of the PR into ``schema`` (a dropped or closed record opens again)."""
        now = clock.now()
        with self.db.write() as conn:
            row = conn.execute(select(pr_schemas).where(*_of(environment, pr_number))).mappings().first()
            values = dict(schema=schema, state="open", updated_at=now, dropped_at=None)
            if head_sha:
                values["head_sha"] = head_sha
            if row is None:
                conn.execute(
                    pr_schemas.insert().values(environment=environment, pr_number=pr_number, created_at=now, **values)
                )
            else:
                conn.execute(update(pr_schemas).where(pr_schemas.c.id == row["id"]).values(**values))
            row = conn.execute(select(pr_schemas).where(*_of(environment, pr_number))).mappings().one()
        return _record(row)

    def mark(self, environment: str, pr_number: int, state: str) -> PrSchema | None:
        """Set the record's state (``dropped`` also stamps ``dropped_at``); None when unknown."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        now = clock.now()
        where = _of(environment, pr_number)
        with self.db.write() as conn:
            values = dict(state=state, updated_at=now)
            if state == "dropped":
                values["dropped_at"] = now
            conn.execute(update(pr_schemas).where(*where).values(**values))
            row = conn.execute(select(pr_schemas).where(*where)).mappings().first()
        return _record(row) if row else None

    def get(self, environment: str, pr_number: int) -> PrSchema | None:
        with self.db.read() as conn:
            row = conn.execute(select(pr_schemas).where(*_of(environment, pr_number))).mappings().first()
        return _record(row) if row else None

    def list(self, *, environment: str | None = None, states: tuple[str, ...] | None = None) -> list[PrSchema]:
        query = select(pr_schemas).order_by(pr_schemas.c.environment, pr_schemas.c.pr_number)
        if environment is not None:
            query = query.where(pr_schemas.c.environment == environment)
        if states:
            query = query.where(pr_schemas.c.state.in_(states))
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]
