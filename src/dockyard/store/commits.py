"""Commits of the deploy branch the server fetched: the deployed one, and those refused.

One row per sha (table ``commits``): ``status`` ``ok`` (its dockyard.yml validated; its jobs
came into force at ``deployed_at``, the newest such row is the deployed commit) or ``refused``
(``error``: the located config error). Deploying an older commit again (a roll-back) moves
its ``deployed_at`` to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from dockyard import clock
from dockyard.store.base import Repository
from dockyard.store.tables import commits


@dataclass
class CommitRecord:
    sha: str
    branch: str | None
    status: str  # ok | refused
    error: str | None
    fetched_at: datetime
    deployed_at: datetime | None


def _record(row) -> CommitRecord:
    return CommitRecord(**{k: row[k] for k in CommitRecord.__dataclass_fields__})


class Commits(Repository):
    def record(self, sha: str, branch: str | None, status: str, error: str | None = None) -> CommitRecord:
        """Record the outcome of a deploy of ``sha``: ``ok`` makes it the deployed commit."""
        if status not in ("ok", "refused"):
            raise ValueError(f"unknown commit status {status!r}")
        now = clock.now()
        values = {"branch": branch, "status": status, "error": error, "fetched_at": now}
        if status == "ok":
            values["deployed_at"] = now
        # one statement: two processes deploying one new sha at once both succeed (an UPDATE
        # then INSERT would let the second INSERT hit the unique sha)
        stmt = self.db.insert(commits).values(sha=sha, **{"deployed_at": None, **values})
        stmt = stmt.on_conflict_do_update(index_elements=["sha"], set_=values)
        with self.db.write() as conn:
            conn.execute(stmt)
            row = conn.execute(select(commits).where(commits.c.sha == sha)).mappings().one()
        return _record(row)

    def get(self, sha: str) -> CommitRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(commits).where(commits.c.sha == sha)).mappings().first()
        return _record(row) if row else None

    def deployed(self) -> CommitRecord | None:
        """The commit whose jobs are in force (the newest deployed), or None."""
        with self.db.read() as conn:
            row = (
                conn.execute(
                    select(commits)
                    .where(commits.c.status == "ok", commits.c.deployed_at.is_not(None))
                    .order_by(commits.c.deployed_at.desc(), commits.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return _record(row) if row else None

    def refused(self) -> CommitRecord | None:
        """The newest refused commit fetched after the deployed one was deployed, or None."""
        current = self.deployed()
        query = select(commits).where(commits.c.status == "refused")
        if current is not None and current.deployed_at is not None:
            query = query.where(commits.c.fetched_at >= current.deployed_at)
        with self.db.read() as conn:
            row = (
                conn.execute(query.order_by(commits.c.fetched_at.desc(), commits.c.id.desc()).limit(1))
                .mappings()
                .first()
            )
        return _record(row) if row else None

    def recent(self, limit: int = 20) -> list[CommitRecord]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(commits).order_by(commits.c.fetched_at.desc(), commits.c.id.desc()).limit(limit)
            ).mappings()
            return [_record(r) for r in rows]
