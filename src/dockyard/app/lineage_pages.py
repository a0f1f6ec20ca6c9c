"""Reads for the lineage page, the hosted docs, the freshness and monitors pages (docs/ui.md).

- The lineage of an environment is the manifest of its latest successful run that kept one
  (``app.ci.base_run``: the base manifest slim CI uses), drawn by :mod:`dockyard.lineage`
  (graph and layouts cached per manifest sha256), each node with its last status in the
  environment (its newest execution, from the node results; cached per newest run id).
- The hosted docs of an environment are those of its latest successful run with a
  ``docs generate`` (``app.runs.docs_root``); files through :func:`dockyard.files.resolve`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from dockyard import lineage
from dockyard.errors import NotFoundError, UnknownEnvironmentError
from dockyard.files import OutsideRoot, resolve

STATUS_CHUNK = 500  # ids per latest-results query (the reader's bound)
SCAN = 20  # successful runs looked at for docs
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
_STATUSES: OrderedDict[tuple[str, int], dict[str, str]] = OrderedDict()
_GRAPHS: OrderedDict[tuple[int, bool], lineage.Graph] = OrderedDict()
_LOCK = threading.Lock()
_KEEP = 16


def _remember(cache: OrderedDict, key, value):
    with _LOCK:
        cache[key] = value
        while len(cache) > _KEEP:
            cache.popitem(last=False)
    return value


class LineagePages:
    def __init__(self, app):  # the App (dockyard.app)
        self.app = app

    def environment(self, name: str) -> str:
        if name not in self.app.config.environments:
            raise UnknownEnvironmentError(
                f"Environment '{name}' not found", hint="environments: " + ", ".join(self.app.config.environments)
            )
        return name

    def default_environment(self) -> str | None:
        """The first environment with a manifest (production-like names first), else the first."""
        envs = list(self.app.config.environments)
        for env in sorted(envs, key=lambda e: (e not in ("prod", "production"), envs.index(e))):
            if self.app.ci.base_run(env) is not None:
                return env
        return envs[0] if envs else None

    # -- lineage ---------------------------------------------------------------------------------
    def graph(self, environment: str, *, tests: bool = False) -> tuple[int, lineage.Graph] | None:
        """``(run id, graph)`` of the environment's newest manifest, or None."""
        found = self.app.ci.base_run(self.environment(environment))
        if found is None:
            return None
        run_id, path = found
        with _LOCK:
            graph = _GRAPHS.get((run_id, tests))
        if graph is None:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise NotFoundError(f"the manifest of run {run_id} is too large to draw")
            graph = _remember(_GRAPHS, (run_id, tests), lineage.cached(path.read_bytes(), tests=tests))
        return run_id, graph

    def statuses(self, environment: str, ids: list[str]) -> dict[str, str]:
        """The last status of each node in the environment (cached until a newer run)."""
        newest, _ = self.app.runs.search(environments=[environment], order_by="-id", limit=1)
        key = (environment, newest[0].id if newest else 0)
        with _LOCK:
            known = _STATUSES.get(key)
        if known is None:
            known = {}
            reader = self.app.store.reader.run_pages
            wanted = [u for u in ids if not u.startswith(("source.", "exposure.", "metric.", "semantic_model."))]
            for i in range(0, len(wanted), STATUS_CHUNK):
                for uid, row in reader.latest_results(environment, wanted[i : i + STATUS_CHUNK]).items():
                    known[uid] = str(row["status"])
            for row in self.app.freshness.latest(environment):  # a source's status: its freshness
                known.setdefault(row["unique_id"], str(row["status"]))
            _remember(_STATUSES, key, known)
        return known

    def drawing(
        self, environment: str, select: str | None = None, exclude: str | None = None, *, tests: bool = False
    ) -> dict[str, Any]:
        """The graph.json of the lineage page: nodes (with ``status``), edges, the run."""
        got = self.graph(environment, tests=tests)
        if got is None:
            return {"environment": environment, "run_id": None, "nodes": [], "edges": [], "total": 0}
        run_id, graph = got
        drawn = lineage.drawing(graph, select, exclude)
        status = self.statuses(environment, list(graph.nodes))
        nodes = [dict(n, status=status.get(n["id"])) for n in drawn["nodes"]]
        return {"environment": environment, "run_id": run_id, **drawn, "nodes": nodes}

    # -- hosted docs ------------------------------------------------------------------------------
    def docs_run(self, environment: str) -> int | None:
        """The environment's latest successful run that generated docs."""
        runs, _ = self.app.runs.search(
            environments=[self.environment(environment)], statuses=["success"], order_by="-id", limit=SCAN
        )
        for run in runs:
            if any(a.name == "index.html" for a in self.app.runs.artifacts(run.id)):
                return run.id
        return None

    def docs_file(self, environment: str, relpath: str) -> tuple[int, Path]:
        """``(run id, file)`` of the hosted docs; NotFoundError for anything else (traversal too)."""
        run_id = self.docs_run(environment)
        if run_id is None:
            raise NotFoundError(
                f"no docs for environment '{environment}'",
                hint="a successful run of a job with 'dbt docs generate' publishes them",
            )
        try:
            return run_id, resolve(self.app.runs.docs_root(run_id), relpath or "index.html")
        except OutsideRoot:
            raise NotFoundError("no such file in the docs") from None

    def docs_index(self) -> list[dict[str, Any]]:
        """Every environment with its docs' run (or None)."""
        return [{"environment": env, "run_id": self.docs_run(env)} for env in self.app.config.environments]

    # -- freshness and monitors -------------------------------------------------------------------
    def freshness(self, environment: str | None = None) -> list[dict[str, Any]]:
        """The last check of every source, stale first (error, runtime error, warn), then by age."""
        order = {"runtime error": 0, "error": 0, "warn": 1}
        rows = self.app.freshness.latest(environment)
        return sorted(
            rows,
            key=lambda r: (order.get(r["status"], 2), -(r.get("age_now_seconds") or 0), r["environment"], r["source"]),
        )

    def monitors(self) -> list[dict[str, Any]]:
        """Every monitor, failing first (alert, error), then never checked, warming up, ok."""
        order = {"alert": 0, "error": 1, None: 2, "warming_up": 3, "ok": 4}
        return sorted(
            self.app.monitors.list(),
            key=lambda m: (order["error"] if m["problem"] else order.get(m["status"], 2), m["name"]),
        )
