"""What a monitor watches: its environment, its relation, the check the macro runs.

A monitor's environment is its ``environment:``, else the one environment of its
``after_jobs``, else the only environment of dockyard.yml, else the one environment of the
jobs of dockyard.yml (the CI environment aside). A ``model:`` (name or unique id) is resolved
to its relation from the environment's last successful manifest (the run
:meth:`dockyard.app.ci.Ci.base_run` finds, as slim CI does); a ``table:`` is taken as written.
:func:`targets_for_run` says which monitors follow a successful run: those listing its job in
``after_jobs``, and, without ``after_jobs``, those whose model (or table name) the run built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dockyard.app import measurements as ms
from dockyard.errors import DockyardError

BUILT = ("success", "pass", "warn")  # statuses of a node that was built (seeds, snapshots: success)
_manifests: dict[tuple[str, float], dict] = {}


@dataclass
class Target:
    monitor: object
    environment: str
    check: dict | None  # what dockyard__measure runs; None: freshness from the store
    relation_text: str
    built_at: datetime | None = None
    tz: ZoneInfo | None = None

    def local(self, at: datetime) -> datetime:
        """``at`` in the monitor's schedule's time zone (weekdays of seasonality)."""
        return at.astimezone(self.tz or UTC)


def environment_of(app, monitor) -> str:
    envs = app.config.environments
    if monitor.environment:
        if monitor.environment not in envs:
            raise DockyardError(
                f"monitor {monitor.name!r}: unknown environment {monitor.environment!r}",
                hint=f"one of: {', '.join(envs)}",
            )
        return monitor.environment
    jobs = {j.name: j.environment for j in app.config.jobs}
    if monitor.after_jobs:
        found = {jobs[j] for j in monitor.after_jobs if j in jobs}
        if len(found) == 1:
            return found.pop()
    if len(envs) == 1:
        return next(iter(envs))
    building = {env for env in jobs.values() if env != app.config.ci.environment}
    if len(building) == 1:
        return building.pop()
    raise DockyardError(
        f"monitor {monitor.name!r}: which environment? dockyard.yml has several",
        hint="set the monitor's environment:",
    )


def _manifest(app, env: str) -> dict:
    from dockyard.slim import manifest as mf

    found = app.ci.base_run(env)
    if found is None:
        raise DockyardError(
            f"environment {env!r} has no successful run with a manifest yet: the model's table is unknown",
            hint="run a job of the environment, or give the monitor a table:",
        )
    path = Path(found[1])
    key = (str(path), path.stat().st_mtime)
    if key not in _manifests:
        _manifests.clear()
        _manifests[key] = mf.load(path)
    return _manifests[key]


def model_relation(app, env: str, ref: str) -> tuple[list, str]:
    """``[database, schema, identifier]`` of the model (seed, snapshot, source) ``ref``, and its unique id."""
    manifest = _manifest(app, env)
    nodes = {**(manifest.get("nodes") or {}), **(manifest.get("sources") or {})}
    node = nodes.get(ref)
    if node is None:
        named = [
            n
            for n in nodes.values()
            if n.get("name") == ref and n.get("resource_type") in ("model", "seed", "snapshot")
        ]
        if len(named) > 1:
            raise DockyardError(f"{len(named)} nodes are named {ref!r}", hint="give the model's unique id")
        node = named[0] if named else None
    if node is None:
        raise DockyardError(f"no model {ref!r} in the last manifest of {env!r}", hint="check the monitor's model:")
    ident = node.get("identifier") if node.get("resource_type") == "source" else None
    ident = ident or node.get("alias") or node.get("name")
    return [node.get("database"), node.get("schema"), ident], node["unique_id"]


def table_relation(table: str) -> list:
    parts = [p.strip('"') for p in _split(table)]
    return [None, *parts] if len(parts) == 2 else parts


def _split(table: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in table:
        if ch == '"':
            quoted = not quoted
        if ch == "." and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def _text(rel: list) -> str:
    return ".".join(p for p in rel if p)


def resolve(app, monitor, env: str | None = None) -> Target:
    env = env or environment_of(app, monitor)
    tz = ZoneInfo(monitor.schedule.timezone) if monitor.schedule else None
    if monitor.type == "sql":
        sql, tokens = ms.sql_with_relations(monitor.sql)
        relations = {t: model_relation(app, env, ref)[0] for t, ref in tokens.items()}
        check = {"name": monitor.name, "kind": "sql", "sql": sql, "relations": relations}
        check |= {"limit": ms.SAMPLE_ROWS, "chars": ms.SAMPLE_CHARS}
        return Target(monitor, env, check, monitor.table or monitor.model or "custom query", tz=tz)
    rel, uid = model_relation(app, env, monitor.model) if monitor.model else (table_relation(monitor.table), None)
    text = _text(rel)
    if monitor.type == "freshness" and not monitor.timestamp_column:
        if uid is None:
            raise DockyardError(
                f"monitor {monitor.name!r}: a freshness monitor of a table needs its timestamp_column",
                hint="or watch the dbt model (model:), whose last build dockyard knows",
            )
        return Target(monitor, env, None, text, built_at=last_build(app, env, uid), tz=tz)
    kind = {"volume": "rows", "freshness": "max", "schema": "columns"}[monitor.type]
    check = {"name": monitor.name, "kind": kind, "relation": rel, "column": monitor.timestamp_column}
    return Target(monitor, env, check, text, tz=tz)


def last_build(app, env: str, unique_id: str) -> datetime | None:
    """When the last run of ``env`` that built ``unique_id`` successfully finished."""
    series = app.store.reader.stats.model_durations(
        environment=env, unique_ids=[unique_id], runs_limit=200, resource_types=("model", "seed", "snapshot")
    )
    times = [p["finished_at"] for s in series for p in s["points"] if p["status"] in BUILT and p["finished_at"]]
    return max(times) if times else None


def targets_for_run(app, env: str, job: str | None, run_id: int) -> list[str]:
    """Names of the monitors of ``env`` that follow run ``run_id`` of ``job`` (quick: no manifest)."""
    mine = []
    for monitor in app.config.monitors:
        try:
            if environment_of(app, monitor) == env:
                mine.append(monitor)
        except DockyardError:
            continue
    if not mine:
        return []
    out = [m.name for m in mine if m.after_jobs and job in m.after_jobs]
    rest = [m for m in mine if not m.after_jobs]
    if not rest:
        return out
    nodes = app.store.reader.runs.get_run(run_id).executed_nodes
    built = {n.unique_id for n in nodes if n.status in BUILT}
    names = {n.name.lower() for n in nodes if n.status in BUILT and n.name}
    for m in rest:
        refs = [m.model] if m.model else []
        if m.type == "sql" and m.sql:
            refs += list(ms.sql_with_relations(m.sql)[1].values())
        hit = any(r in built or r.lower() in names for r in refs)
        if m.table and not m.model:
            hit = hit or table_relation(m.table)[-1].lower() in names
        if hit:
            out.append(m.name)
    return out
