"""``app.dashboard``: the reads of the web UI's dashboard, jobs, job and environments pages.

Every read goes through ``app.store.reader`` with a bound (a LIMIT per job, per environment,
per list); nothing here writes. Times are datetimes, durations seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dockyard import clock
from dockyard.domain import RunRecord
from dockyard.errors import DockyardError
from dockyard.store.run_pages import RunFilter
from dockyard.store.search import RunSearch

RECENT = 20  # runs of a job in its sparkline
ACTIVE = ("queued", "starting", "running")
MAX_LISTED = 50  # runs in progress / queued shown on the dashboard


@dataclass
class JobRow:
    id: int
    name: str
    environment: str
    cron: str | None
    source: str
    last: RunRecord | None
    next_fire: datetime | None
    durations: list[tuple[int, float, str]] = field(default_factory=list)  # (run id, seconds, status), oldest first

    @property
    def last_duration(self) -> float | None:
        return self.last.duration_s if self.last else None


@dataclass
class Progress:
    run: RunRecord
    nodes_done: int
    nodes_total: int


class Dashboard:
    def __init__(self, app):  # the App (dockyard.app)
        self.app = app

    @property
    def reader(self):
        return self.app.store.reader

    def _search(self, **filters: Any) -> list[RunRecord]:
        """Runs by :class:`RunSearch` (with a count: for the few active runs only)."""
        return self.reader.runs.search_runs(RunSearch(**filters))[0]

    def _newest(self, limit: int, **filters: Any) -> list[RunRecord]:
        """The newest runs matching ``filters``, without counting them all (a job or an
        environment with 100,000 runs costs the LIMIT, not a count)."""
        return self.reader.run_pages.list_page(RunFilter(**filters), limit=limit, cap=0)[0]

    # -- jobs ---------------------------------------------------------------------------------
    def jobs(self, recent: int = RECENT) -> list[JobRow]:
        """Every job with its last run, next fire and its recent finished runs' durations."""
        rows = []
        for view in self.app.jobs.list():
            record = view.record
            runs = self._newest(recent, job_ids=[record.id])
            fires = self.app.next_fires(record, 1)
            durations = [(r.id, r.duration_s, r.status.value) for r in reversed(runs) if r.duration_s is not None]
            rows.append(
                JobRow(
                    record.id,
                    record.name,
                    record.environment,
                    record.cron,
                    view.source,
                    runs[0] if runs else None,
                    fires[0] if fires else None,
                    durations,
                )
            )
        return rows

    def job(self, job_id: int, *, limit: int = 200, recent: int = 20) -> dict[str, Any]:
        """One job: its view, YAML definition, next fires, its ``recent`` newest runs with
        their number (counted up to 10,000: ``more`` beyond), and the durations of its last
        ``limit`` runs that finished (the trend chart, oldest first)."""
        view = self.app.jobs.get(job_id)
        runs, total, more = self.reader.run_pages.list_page(RunFilter(job_ids=[job_id]), limit=recent)
        history = runs if limit <= recent else self._newest(limit, job_ids=[job_id])
        trend = [
            (r.id, r.duration_s, r.status.value, r.finished_at) for r in reversed(history) if r.duration_s is not None
        ]
        return {
            "view": view,
            "yaml": job_yaml(view.config),
            "next_fires": self.app.next_fires(view.record, 3),
            "runs": runs,
            "total": total,
            "more": more,
            "trend": trend,
        }

    # -- runs in progress and the queue -------------------------------------------------------
    def running(self, limit: int = MAX_LISTED) -> list[Progress]:
        """Runs starting or running, newest first, with their models done of total so far."""
        out = []
        for run in self._search(statuses=["starting", "running"], limit=limit):
            try:
                full = self.reader.runs.get_run(run.id)
            except DockyardError:  # it ended and was pruned meanwhile
                continue
            nodes = full.executed_nodes
            out.append(Progress(full, sum(1 for n in nodes if n.finished_at is not None), len(nodes)))
        return out

    def queue(self, limit: int = MAX_LISTED) -> list[RunRecord]:
        """Queued runs, the oldest (the next to start) first."""
        return self._search(statuses=["queued"], order_by="id", limit=limit)

    def live(self) -> dict[str, Any]:
        """The dashboard's poll: runs in progress (models done of total) and the queue size."""
        running = self.running()
        return {
            "status": "running" if running else "idle",
            "running": [
                {
                    "id": p.run.id,
                    "job": p.run.job,
                    "status": p.run.status.value,
                    "nodes_done": p.nodes_done,
                    "nodes_total": p.nodes_total,
                    "started_at": p.run.started_at.isoformat() if p.run.started_at else None,
                }
                for p in running
            ],
            "queued": len(self.queue()),
            "at": clock.now().isoformat(),
        }

    # -- observability ------------------------------------------------------------------------
    def stale_sources(self) -> list[dict[str, Any]]:
        try:
            return self.app.freshness.stale()[:MAX_LISTED]
        except DockyardError:
            return []

    def failing_monitors(self) -> list[dict[str, Any]]:
        if not self.app.config.monitors:
            return []
        try:
            return [m for m in self.app.monitors.list() if m["status"] not in (None, "ok")][:MAX_LISTED]
        except DockyardError:
            return []

    # -- environments -------------------------------------------------------------------------
    def environments(self) -> list[dict[str, Any]]:
        """Each environment: target, schema, its last run, latest successful run and the
        commit that run ran (the deployed commit when code comes from git)."""
        deployed = None
        if self.app.config.repository is not None:
            try:
                deployed = self.app.repository.deployed()
            except DockyardError:
                deployed = None
        out = []
        for name, env in sorted(self.app.config.environments.items()):
            last = self._newest(1, environments=[name])
            success = None  # an environment that never ran has no success to look for
            if last and last[0].status.value == "success":
                success = last[0]
            elif last:
                good = self._newest(1, environments=[name], statuses=["success"])
                success = good[0] if good else None
            out.append(
                {
                    "name": name,
                    "target": env.target,
                    "schema": env.schema_,
                    "threads": env.threads,
                    "last_run": last[0] if last else None,
                    "last_success": success,
                    "sha": (getattr(success, "git_sha", None) if success else None) or deployed,
                    "deployed": deployed,
                }
            )
        return out


def job_yaml(config) -> str:
    """The job's settings as dockyard.yml would hold them (defaults left out)."""
    import io

    from ruamel.yaml import YAML

    data = config.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    out = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(data, out)
    return out.getvalue()
