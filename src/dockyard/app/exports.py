"""A job's dbt graph for ``dockyard export airflow|prefect|dagster``: the models of the
latest manifest of the job's environment (from this store, or from a server through
:mod:`dockyard.client`), one task per model or per folder or layer, with the dbt
dependencies between them."""

from __future__ import annotations

import json
import posixpath
import re
from collections import defaultdict

from dockyard.errors import DockyardError
from dockyard.integrations.render import Graph, Task

GROUPS = ("model", "folder", "layer")
TASK_TYPES = frozenset({"model"})  # a seed or snapshot the job may not run would hold up its models


def local_graph(app, job: str, group_by: str = "model", server: str | None = None) -> Graph:
    """The graph of ``job`` (name or id) from the manifest of the last successful run of its
    environment in this store."""
    view = app.jobs.get(job)
    env = view.record.environment
    found = app.ci.base_run(env)
    if found is None:
        raise DockyardError(
            f"environment {env!r} has no successful run with a manifest yet",
            hint=f"run a job of {env!r} first (dockyard run ...), then export again",
        )
    run_id, path = found
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return graph(
        manifest,
        job=view.name,
        environment=env,
        source=f"run {run_id}",
        group_by=group_by,
        server=server,
        tests=runs_tests(view.config.commands),
    )


def remote_graph(client, job: str, group_by: str = "model") -> Graph:
    """The same, asking a dockyard server (``client``: a :class:`dockyard.client.Client`)."""
    jobs = client.jobs()
    chosen = [j for j in jobs if j.get("name") == job or str(j.get("id")) == str(job)]
    if not chosen:
        raise DockyardError(f"the server has no job {job!r}", hint="one of: " + ", ".join(j["name"] for j in jobs))
    env = chosen[0]["environment"]
    found = client.latest_manifest(env)
    if found is None:
        raise DockyardError(f"environment {env!r} has no successful run with a manifest on {client.url}")
    manifest = json.loads(found[1])
    name = chosen[0]["name"]
    tests = runs_tests(chosen[0].get("commands") or [])
    return graph(
        manifest, job=name, environment=env, source=f"run {found[0]}", group_by=group_by, server=client.url, tests=tests
    )


def runs_tests(commands: list[str]) -> bool:
    """Whether a job with these commands runs dbt tests (``dbt build`` or ``dbt test``)."""
    for command in commands:
        words = [w for w in str(command).split() if not w.startswith("-")]
        if len(words) > 1 and words[0] == "dbt" and words[1] in ("build", "test"):
            return True
    return False


def model_tests(manifest: dict, models: set[str]) -> dict[str, dict[str, str]]:
    """Each model's dbt tests (name -> unique id): the tests attached to it (dbt's
    ``attached_node``; a singular test on one model only, otherwise)."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for uid, node in (manifest.get("nodes") or {}).items():
        if node.get("resource_type") != "test":
            continue
        attached = node.get("attached_node")
        if not attached:
            deps = [d for d in (node.get("depends_on") or {}).get("nodes") or [] if d in models]
            attached = deps[0] if len(set(deps)) == 1 else None
        if attached in models:
            out[attached][node.get("name") or uid] = uid
    return out


def model_edges(manifest: dict) -> dict[str, set[str]]:
    """Each model's nearest upstream models, through the other nodes (a snapshot or seed
    between two models); sources and seeds end the walk."""
    nodes = {k: v for k, v in (manifest.get("nodes") or {}).items() if v.get("resource_type") in TASK_TYPES}
    every = manifest.get("nodes") or {}

    def upstream(uid: str, seen: set[str]) -> set[str]:
        out: set[str] = set()
        for dep in (every.get(uid) or {}).get("depends_on", {}).get("nodes") or []:
            if dep in seen:
                continue
            seen.add(dep)
            out |= {dep} if dep in nodes else upstream(dep, seen)
        return out

    return {uid: upstream(uid, set()) for uid in sorted(nodes)}


def group_of(node: dict, group_by: str) -> str:
    if group_by == "model":
        return node["name"]
    folder = posixpath.dirname(node.get("path") or "") or node.get("resource_type", "models") + "s"
    if group_by == "folder":
        return folder
    return folder.split("/")[0]


def graph(
    manifest: dict,
    *,
    job: str,
    environment: str,
    source: str,
    group_by: str = "model",
    server: str | None = None,
    tests: bool = False,
) -> Graph:
    """The tasks of ``manifest``'s models grouped by ``group_by``; with ``tests`` (the job
    runs dbt tests), each task lists its models' tests."""
    if group_by not in GROUPS:
        raise DockyardError(f"--group-by {group_by!r}: one of {', '.join(GROUPS)}")
    edges = model_edges(manifest)
    nodes = manifest.get("nodes") or {}
    members: dict[str, list[str]] = defaultdict(list)
    for uid in edges:
        members[group_of(nodes[uid], group_by)].append(uid)
    of = {uid: group for group, uids in members.items() for uid in uids}
    names = identifiers(sorted(members))
    checks = model_tests(manifest, set(edges)) if tests else {}
    tasks = []
    for group in sorted(members):
        uids = sorted(members[group])
        up = sorted({names[of[d]] for u in uids for d in edges[u] if of[d] != group})
        tasks.append(
            Task(
                name=names[group],
                label=group,
                nodes=uids,
                select=sorted(nodes[u]["name"] for u in uids),
                upstream=up,
                folder=posixpath.dirname(nodes[uids[0]].get("path") or "") or "models",
                tests={name: test for u in uids for name, test in checks.get(u, {}).items()},
            )
        )
    result = Graph(job=job, environment=environment, source=source, group_by=group_by, server=server, tasks=tasks)
    cycle = result.cycle()
    if cycle:
        raise DockyardError(
            f"--group-by {group_by}: the groups depend on each other in a cycle ({' -> '.join(cycle)})",
            hint="export with --group-by model, or a coarser grouping",
        )
    return result


def identifiers(labels: list[str]) -> dict[str, str]:
    """A Python identifier (and task id) per label, unique and stable."""
    out: dict[str, str] = {}
    used: set[str] = {"dag", "trigger", "run_id", "SERVER", "JOB"}
    for label in labels:
        base = re.sub(r"\W+", "_", label).strip("_").lower() or "models"
        base = f"m_{base}" if base[0].isdigit() else base
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[label] = name
    return out
