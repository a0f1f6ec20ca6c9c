"""The OpenLineage events of one dockyard run, built from its artifacts (each step's
``manifest.json`` and ``run_results.json``) with openlineage-python's typed classes
(docs/integrations.md#openlineage).

The dockyard run is the parent job (``<namespace>`` / the dockyard job's name). Every model,
seed, snapshot and test that a step executed is a job of its own (``<namespace>`` / its
unique id) with a START at its start and a COMPLETE (success, pass, warn) or FAIL (error,
fail) at its end, carrying the parent run facet, its inputs (the relations it depends on; an
ephemeral model stands for its parents) and outputs (its relation; tests have none), the
compiled SQL and the job type. Skipped nodes never ran: no events. Run ids are UUIDs derived
from the namespace, the run and the node, so a redelivered run sends the same ids.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    datasource_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
)

PRODUCER = "https://github.com/dockyard-dev/dockyard"
EXECUTED = {"model": "MODEL", "seed": "SEED", "snapshot": "SNAPSHOT", "test": "TEST"}
RELATIONS = {"model", "seed", "snapshot", "source"}
FAILED = {"error", "fail", "runtime error"}
FINAL_STATES = {"success": RunState.COMPLETE, "cancelled": RunState.ABORT}
COMPILE_ONLY = {"generate", "compile", "ls", "list", "show", "parse"}  # steps that execute nothing


@dataclass(frozen=True)
class Step:
    index: int
    manifest: dict[str, Any]
    results: dict[str, Any]


def load_steps(root: Path, artifacts) -> list[Step]:
    """The steps that executed nodes and kept both a ``run_results.json`` and a
    ``manifest.json`` (``artifacts``: the run's ArtifactRefs; ``root``: its artifacts
    folder); ``docs generate``, ``compile``, ``ls`` only compile. One manifest is read once."""
    by_step: dict[int, dict[str, Any]] = {}
    for ref in artifacts:
        by_step.setdefault(ref.step_index, {})[ref.name] = ref
    manifests: dict[str, dict[str, Any]] = {}
    steps = []
    for index in sorted(by_step):
        refs = by_step[index]
        if "run_results.json" not in refs or "manifest.json" not in refs:
            continue
        m = refs["manifest.json"]
        if m.sha256 not in manifests or not m.sha256:
            manifests[m.sha256] = json.loads((root / m.path).read_text())
        results = json.loads((root / refs["run_results.json"].path).read_text())
        if (results.get("args") or {}).get("which") in COMPILE_ONLY:
            continue
        steps.append(Step(index, manifests[m.sha256], results))
    return steps


def dataset_namespace(output: dict[str, Any], base_dir: Path) -> str:
    """The OpenLineage namespace of a profiles.yml target (rendered): ``duckdb://<path>``,
    ``postgres://host:port``, ``snowflake://account``, ``bigquery``, ``<type>://host``."""
    kind = str(output.get("type") or "unknown")
    if kind == "duckdb":
        path = str(output.get("path") or ":memory:")
        if path != ":memory:" and "://" not in path:
            path = os.path.abspath(base_dir / path)
        return f"duckdb://{path}"
    if kind in ("postgres", "redshift"):
        port = output.get("port") or (5432 if kind == "postgres" else 5439)
        return f"{kind}://{output.get('host') or 'localhost'}:{port}"
    if kind == "snowflake":
        return f"snowflake://{output.get('account', '')}"
    if kind == "bigquery":
        return "bigquery"
    return f"{kind}://{output.get('host') or output.get('account') or ''}"


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "dockyard:" + ":".join(str(p) for p in parts)))


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


class RunLineage:
    """The events of one run: ``events(run, steps)``. ``namespace``: of the jobs;
    ``datasets``: of the warehouse (:func:`dataset_namespace`)."""

    def __init__(self, namespace: str, datasets: str):
        self.namespace = namespace
        self.datasets = datasets

    def parent(self, run) -> tuple[str, str]:
        return _uuid(self.namespace, "run", run.id), run.job

    def _relation(self, node: dict[str, Any]) -> str:
        ident = node.get("alias") or node.get("identifier") or node.get("name")
        return ".".join(str(p) for p in (node.get("database"), node.get("schema"), ident) if p)

    def _schema(self, node: dict[str, Any]) -> schema_dataset.SchemaDatasetFacet | None:
        columns = node.get("columns") or {}
        if not columns:
            return None
        return schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=c.get("name") or key, type=c.get("data_type") or None, description=c.get("description") or None
                )
                for key, c in columns.items()
            ]
        )

    def _dataset(self, node: dict[str, Any], cls):
        facets: dict[str, Any] = {
            "dataSource": datasource_dataset.DatasourceDatasetFacet(name=self.datasets, uri=self.datasets)
        }
        if schema := self._schema(node):
            facets["schema"] = schema
        return cls(namespace=self.datasets, name=self._relation(node), facets=facets)

    def _inputs(self, manifest: dict[str, Any], node: dict[str, Any], seen: set[str] | None = None) -> list[dict]:
        seen = set() if seen is None else seen
        found = []
        for parent_id in (node.get("depends_on") or {}).get("nodes") or []:
            if parent_id in seen:
                continue
            seen.add(parent_id)
            parent = manifest.get("nodes", {}).get(parent_id) or manifest.get("sources", {}).get(parent_id)
            if parent is None or parent.get("resource_type") not in RELATIONS:
                continue
            if (parent.get("config") or {}).get("materialized") == "ephemeral":
                found.extend(self._inputs(manifest, parent, seen))
            else:
                found.append(parent)
        return found

    def _node_events(self, run, step: Step, result: dict[str, Any], dbt_version: str, adapter: str) -> list[RunEvent]:
        uid = result.get("unique_id") or ""
        node = step.manifest.get("nodes", {}).get(uid)
        status = str(result.get("status") or "")
        if node is None or node.get("resource_type") not in EXECUTED or status == "skipped":
            return []
        kind = node["resource_type"]
        times = {t.get("name"): t for t in result.get("timing") or []}
        span = times.get("execute") or times.get("compile") or {}
        started = span.get("started_at") or _iso(run.started_at) or step.results.get("metadata", {}).get("generated_at")
        ended = span.get("completed_at") or started
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DBT", jobType=EXECUTED[kind])
        }
        sql = result.get("compiled_code") or node.get("compiled_code")
        if sql:
            job_facets["sql"] = sql_job.SQLJobFacet(query=sql, dialect=adapter or None)
        if node.get("description"):
            job_facets["documentation"] = documentation_job.DocumentationJobFacet(description=node["description"])
        parent_id, parent_name = self.parent(run)
        run_facets: dict[str, Any] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent_id),
                job=parent_run.Job(namespace=self.namespace, name=parent_name),
                root=parent_run.Root(
                    run=parent_run.RootRun(runId=parent_id),
                    job=parent_run.RootJob(namespace=self.namespace, name=parent_name),
                ),
            ),
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(version=dbt_version, name="dbt"),
        }
        job = Job(namespace=self.namespace, name=uid, facets=job_facets)
        relations = {self._relation(p): p for p in self._inputs(step.manifest, node)}  # a source over a seed: once
        inputs = [self._dataset(p, InputDataset) for p in relations.values()]
        outputs = []
        if kind != "test" and (node.get("config") or {}).get("materialized") != "ephemeral":
            outputs = [self._dataset(node, OutputDataset)]
        run_id = _uuid(self.namespace, "run", run.id, "step", step.index, uid)
        start = RunEvent(
            eventType=RunState.START,
            eventTime=started,
            run=Run(runId=run_id, facets=run_facets),
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
        end_facets = dict(run_facets)
        failed = status in FAILED
        if failed and result.get("message"):
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(result["message"])[:2000], programmingLanguage="SQL"
            )
        end = RunEvent(
            eventType=RunState.FAIL if failed else RunState.COMPLETE,
            eventTime=ended,
            run=Run(runId=run_id, facets=end_facets),
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
        return [start, end]

    def events(self, run, steps: list[Step]) -> list[RunEvent]:
        """START of the dockyard run, each executed node's START and COMPLETE/FAIL in the
        order dbt reported them, then the run's COMPLETE, FAIL or ABORT."""
        parent_id, parent_name = self.parent(run)
        job = Job(
            namespace=self.namespace,
            name=parent_name,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DOCKYARD", jobType="JOB")
            },
        )
        status = run.status.value
        started = _iso(run.started_at or run.created_at)
        out = [
            RunEvent(eventType=RunState.START, eventTime=started, run=Run(runId=parent_id), job=job, producer=PRODUCER)
        ]
        for step in steps:
            meta = step.results.get("metadata") or {}
            adapter = (step.manifest.get("metadata") or {}).get("adapter_type") or ""
            for result in step.results.get("results") or []:
                out.extend(self._node_events(run, step, result, str(meta.get("dbt_version") or "unknown"), adapter))
        end_facets: dict[str, Any] = {}
        state = FINAL_STATES.get(status, RunState.FAIL)
        if state is RunState.FAIL:
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"dockyard run {run.id} ended {status}" + (f" ({run.reason})" if run.reason else ""),
                programmingLanguage="SQL",
            )
        out.append(
            RunEvent(
                eventType=state,
                eventTime=_iso(run.finished_at) or started,
                run=Run(runId=parent_id, facets=end_facets),
                job=job,
                producer=PRODUCER,
            )
        )
        return out
