"""Reads of the web UI's runs list, run page and model page (read-only; ``reader.run_pages``).

Every read is bounded (LIMIT, or a list of ids) and walks an index: the list by the runs'
primary key (newest first) or ``ix_runs_status``/``ix_runs_job_id_id``/``ix_runs_pr_number_id``
(a pull request's runs: the ``pr_number`` column, written with the overrides), a model's
history by ``ix_node_results_unique_id_run_id``. The list's total is counted up to ``count_cap`` rows
(``SELECT count(*) FROM (... LIMIT cap)``): a filter that matches most of 100,000 runs stops
early instead of counting them all, and the page says "10,000+".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select

from dockyard.domain import COMPILED, NodeResult
from dockyard.store import records as rec
from dockyard.store.base import Repository
from dockyard.store.queries import RunQueries
from dockyard.store.records import StoredRun
from dockyard.store.tables import artifacts, node_results, runs

COUNT_CAP = 10_000
#: The node columns a run page shows or times (NodeResult's fields; not the
#: ``adapter_response`` document nor ``compiled_path``).
PAGE_NODE_COLUMNS = (
    "step_index",
    "unique_id",
    "name",
    "resource_type",
    "status",
    "started_at",
    "finished_at",
    "execution_time_s",
    "rows_affected",
    "message",
    "thread",
)


@dataclass
class RunFilter:
    statuses: list[str] | None = None
    job_ids: list[int] | None = None
    triggers: list[str] | None = None
    environments: list[str] | None = None
    branch: str | None = None
    pr: int | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before

    def conditions(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.statuses:
            conds.append(runs.c.status.in_([rec.run_status(s).value for s in self.statuses]))
        if self.job_ids is not None:
            conds.append(runs.c.job_id.in_(self.job_ids))
        if self.triggers:
            conds.append(runs.c.trigger.in_(self.triggers))
        if self.environments:
            conds.append(runs.c.environment.in_(self.environments))
        if self.branch:
            conds.append(runs.c.git_branch == self.branch)
        if self.pr is not None:  # the column written with the overrides (0012)
            conds.append(runs.c.pr_number == int(self.pr))
        if self.since is not None:
            conds.append(runs.c.created_at >= self.since)
        if self.until is not None:
            conds.append(runs.c.created_at < self.until)
        return conds


class RunPageReader(Repository):
    """The web UI's reads (part of :class:`dockyard.store.reader.StoreReader`)."""

    def list_query(self, f: RunFilter, *, limit: int, offset: int = 0):
        return select(runs).where(*f.conditions()).order_by(runs.c.id.desc()).limit(limit).offset(offset or None)

    def count_query(self, f: RunFilter, cap: int = COUNT_CAP):
        inner = select(runs.c.id).where(*f.conditions()).limit(cap + 1).subquery()
        return select(func.count()).select_from(inner)

    def list_page(
        self, f: RunFilter, *, limit: int = 25, offset: int = 0, cap: int = COUNT_CAP
    ) -> tuple[list[StoredRun], int, bool]:
        """A page of runs (newest first, with their steps), the number matching (at most
        ``cap``), and whether there are more than ``cap``."""
        with self.db.read() as conn:
            found = [rec.run_record(r) for r in conn.execute(self.list_query(f, limit=limit, offset=offset)).mappings()]
            total = int(conn.execute(self.count_query(f, cap)).scalar_one())
            steps = RunQueries._steps(conn, [r.id for r in found])
        for run in found:
            run.steps = steps.get(run.id, [])
        return found, min(total, cap), total > cap

    def run_nodes(self, run_id: int) -> list[NodeResult]:
        """The run's executed node results for its page, in the store's order (step, start,
        id): the page's columns only (no ``adapter_response`` document to decode, no
        ``compiled_path``), without the nodes of steps that only compiled."""
        cols = [node_results.c[name] for name in PAGE_NODE_COLUMNS]
        query = (
            select(*cols)
            .where(node_results.c.run_id == run_id, node_results.c.status != COMPILED)
            .order_by(node_results.c.step_index, node_results.c.started_at.asc().nulls_last(), node_results.c.id)
        )
        with self.db.read() as conn:
            return [NodeResult(**dict(zip(PAGE_NODE_COLUMNS, row, strict=True))) for row in conn.execute(query)]

    def choices(self) -> dict[str, list[str]]:
        """Distinct environments and triggers of the newest 1,000 runs (for the filter form)."""
        recent = select(runs.c.environment, runs.c.trigger).order_by(runs.c.id.desc()).limit(1000).subquery()
        with self.db.read() as conn:
            rows = conn.execute(select(recent.c.environment, recent.c.trigger).distinct()).all()
        return {"environments": sorted({r[0] for r in rows}), "triggers": sorted({r[1] for r in rows})}

    def node_history(self, environment: str, unique_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The node's executions in the environment's runs, newest first (``limit`` of them)."""
        query = (
            select(
                node_results.c.run_id,
                node_results.c.step_index,
                node_results.c.name,
                node_results.c.resource_type,
                node_results.c.status,
                node_results.c.started_at,
                node_results.c.finished_at,
                node_results.c.execution_time_s,
                node_results.c.rows_affected,
                node_results.c.message,
                runs.c.job_name.label("job"),
                runs.c.status.label("run_status"),
                runs.c.created_at.label("run_created_at"),
            )
            .join(runs, runs.c.id == node_results.c.run_id)
            .where(
                node_results.c.unique_id == unique_id,
                runs.c.environment == environment,
                node_results.c.status != COMPILED,
            )
            .order_by(node_results.c.run_id.desc(), node_results.c.step_index.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def latest_results(self, environment: str, unique_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each node's newest execution in the environment (at most 500 nodes)."""
        ids = list(dict.fromkeys(unique_ids))[:500]
        if not ids:
            return {}
        newest = (
            select(node_results.c.unique_id, func.max(node_results.c.run_id).label("run_id"))
            .join(runs, runs.c.id == node_results.c.run_id)
            .where(
                node_results.c.unique_id.in_(ids), runs.c.environment == environment, node_results.c.status != COMPILED
            )
            .group_by(node_results.c.unique_id)
            .subquery()
        )
        query = (
            select(node_results)
            .join(
                newest,
                and_(newest.c.unique_id == node_results.c.unique_id, newest.c.run_id == node_results.c.run_id),
            )
            .where(node_results.c.status != COMPILED)
            .order_by(node_results.c.step_index)
        )
        out: dict[str, dict[str, Any]] = {}
        with self.db.read() as conn:
            for r in conn.execute(query).mappings():
                out[r["unique_id"]] = dict(r)  # the last step's wins
        return out

    def latest_artifact(self, environment: str, name: str, *, scan: int = 200) -> tuple[int, int] | None:
        """``(run_id, step_index)`` of the newest of the environment's last ``scan`` runs that
        kept an artifact called ``name`` (its last step's), or None."""
        recent = (
            select(runs.c.id).where(runs.c.environment == environment).order_by(runs.c.id.desc()).limit(scan).subquery()
        )
        query = (
            select(artifacts.c.run_id, artifacts.c.step_index)
            .where(artifacts.c.run_id.in_(select(recent.c.id)), artifacts.c.name == name)
            .order_by(artifacts.c.run_id.desc(), artifacts.c.step_index.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return (int(row[0]), int(row[1])) if row else None
