"""The catalog of a dbt project as dockyard knows it (docs/integrations.md#catalogs).

* :meth:`Catalog.artifact`: the newest successful run's ``manifest.json``, ``catalog.json``,
  ``run_results.json`` or ``sources.json`` of an environment (its last step that kept one),
  served by ``GET /api/v1/environments/{name}/artifacts/{file}`` for Atlan, Select Star,
  Metaphor and any tool that reads dbt artifacts from URLs.
* :meth:`Catalog.export`: a portable JSON document (``dockyard export catalog``): models,
  seeds, snapshots and sources with their columns (types from ``catalog.json``),
  descriptions, owners, tags, ``meta`` as written in the project, lineage and last run
  status. Its shape is versioned (``format``) and documented; keys are sorted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dockyard import clock
from dockyard.errors import NotFoundError, UnknownEnvironmentError

ARTIFACTS = ("manifest.json", "catalog.json", "run_results.json", "sources.json")
FORMAT = "dockyard.catalog/1"
SCAN = 50  # successful runs looked at, newest first
NODES = ("model", "seed", "snapshot")


def _owner(node: dict[str, Any]) -> str | None:
    meta = node.get("meta") or (node.get("config") or {}).get("meta") or {}
    owner = meta.get("owner")
    return str(owner) if owner else None


class Catalog:
    def __init__(self, app):
        self.app = app

    def _environment(self, name: str) -> None:
        if name not in self.app.config.environments:
            raise UnknownEnvironmentError(
                f"Environment '{name}' not found", hint="environments: " + ", ".join(self.app.config.environments)
            )

    def artifact(self, environment: str, name: str) -> tuple[Path, Any]:
        """The path of ``name`` in the newest successful run of ``environment`` that kept it
        (its last step's), and that run. NotFoundError for another name, or none kept."""
        self._environment(environment)
        if name not in ARTIFACTS:
            raise NotFoundError(f"no artifact {name!r}", hint="artifacts: " + ", ".join(ARTIFACTS))
        runs, _ = self.app.runs.search(environments=[environment], statuses=["success"], order_by="-id", limit=SCAN)
        for run in runs:
            refs = [a for a in self.app.runs.artifacts(run.id) if a.name == name]
            if refs:
                ref = max(refs, key=lambda a: a.step_index)
                return self.app.runs.artifact_path(run.id, ref.path), run
        raise NotFoundError(
            f"no successful run of environment {environment!r} kept {name}",
            hint="run a job in it whose commands write it (catalog.json: dbt docs generate)",
        )

    def load(self, environment: str, name: str, *, required: bool = True) -> dict[str, Any] | None:
        try:
            path, _ = self.artifact(environment, name)
        except NotFoundError:
            if required:
                raise
            return None
        return json.loads(path.read_text())

    def newest_environment(self) -> str:
        """The environment of the newest successful run that kept a manifest (the default
        of ``--env``)."""
        runs, _ = self.app.runs.search(statuses=["success"], order_by="-id", limit=SCAN)
        for run in runs:
            if any(a.name == "manifest.json" for a in self.app.runs.artifacts(run.id)):
                return run.environment
        raise NotFoundError("no successful run kept a manifest.json", hint="run a job first, or pass --env")

    def _last_status(self, environment: str) -> dict[str, dict[str, Any]]:
        """unique id -> the status of its newest execution in the environment (last 90 days)."""
        rows = self.app.metrics.models(environment=environment, days=90, limit=1000, resource_types=NODES)
        out = {}
        for row in rows:
            last = row.get("last") or {}
            finished = last.get("finished_at")
            out[row["unique_id"]] = {
                "status": last.get("status"),
                "run_id": last.get("run_id"),
                "finished_at": finished.isoformat() if hasattr(finished, "isoformat") else finished,
                "execution_time_s": last.get("execution_time_s"),
            }
        return out

    def export(self, environment: str) -> dict[str, Any]:
        """The portable catalog of ``environment`` (see docs/integrations.md#catalogs)."""
        manifest_path, run = self.artifact(environment, "manifest.json")
        manifest = json.loads(manifest_path.read_text())
        catalog = self.load(environment, "catalog.json", required=False) or {}
        typed = {**(catalog.get("nodes") or {}), **(catalog.get("sources") or {})}
        status = self._last_status(environment)
        children: dict[str, list[str]] = {}
        for uid, parents in (manifest.get("parent_map") or {}).items():
            for parent in parents:
                children.setdefault(parent, []).append(uid)
        nodes = {**(manifest.get("nodes") or {}), **(manifest.get("sources") or {})}
        entries = []
        for uid in sorted(nodes):
            node = nodes[uid]
            kind = node.get("resource_type")
            if kind not in (*NODES, "source"):
                continue
            types = (typed.get(uid) or {}).get("columns") or {}
            columns = []
            for key, col in (node.get("columns") or {}).items():
                name = col.get("name") or key
                found = types.get(name) or types.get(name.lower()) or types.get(name.upper()) or {}
                columns.append(
                    {
                        "name": name,
                        "type": found.get("type") or col.get("data_type"),
                        "description": col.get("description") or "",
                        "meta": col.get("meta") or {},
                        "tags": sorted(col.get("tags") or []),
                    }
                )
            for name, found in types.items():  # columns the warehouse has but the project does not describe
                if not any(c["name"].lower() == name.lower() for c in columns):
                    columns.append({"name": name, "type": found.get("type"), "description": "", "meta": {}, "tags": []})
            config = node.get("config") or {}
            entries.append(
                {
                    "unique_id": uid,
                    "resource_type": kind,
                    "name": node.get("name"),
                    "package": node.get("package_name"),
                    "path": node.get("original_file_path"),
                    "relation": node.get("relation_name"),
                    "database": node.get("database"),
                    "schema": node.get("schema"),
                    "identifier": node.get("alias") or node.get("identifier") or node.get("name"),
                    "materialized": config.get("materialized") if kind != "source" else None,
                    "description": node.get("description") or "",
                    "owner": _owner(node),
                    "tags": sorted(node.get("tags") or []),
                    "meta": node.get("meta") or config.get("meta") or {},
                    "columns": columns,
                    "upstream": sorted((manifest.get("parent_map") or {}).get(uid, [])),
                    "downstream": sorted(children.get(uid, [])),
                    "last_run": status.get(uid),
                }
            )
        meta = manifest.get("metadata") or {}
        return {
            "format": FORMAT,
            "generated_at": clock.now().isoformat(),
            "environment": environment,
            "project": meta.get("project_name") or self.app.project.name,
            "adapter": meta.get("adapter_type"),
            "dbt_version": meta.get("dbt_version"),
            "source_run": {
                "id": run.id,
                "job": run.job,
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            },
            "nodes": entries,
        }
