"""JSON-ready shapes of runs and jobs, shared by the CLI (--json) and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dockyard.domain import JobRecord, NodeResult, RunRecord


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def node_dict(node: NodeResult, step_index: int | None = None) -> dict[str, Any]:
    out = {
        "unique_id": node.unique_id,
        "name": node.name,
        "resource_type": node.resource_type,
        "status": node.status,
        "execution_time_s": round(node.execution_time_s, 3) if node.execution_time_s is not None else None,
        "rows_affected": node.rows_affected,
        "message": node.message,
        "started_at": iso(node.started_at),
        "finished_at": iso(node.finished_at),
    }
    if step_index is not None:
        out["step_index"] = step_index
    return out


def run_dict(run: RunRecord, *, nodes: bool = True, all_nodes: bool = False) -> dict[str, Any]:
    """``nodes`` lists the nodes the run executed; with ``all_nodes`` also those its steps only
    compiled (``docs generate``, ``compile``, ``ls``, ``show``: status ``compiled``)."""
    out: dict[str, Any] = {
        "id": run.id,
        "job": run.job,
        "job_id": run.job_id,
        "environment": run.environment,
        "status": run.status.value,
        "status_code": run.status_code,
        "reason": run.reason,
        "has_warnings": run.has_warnings,
        "trigger": run.trigger,
        "cause": run.cause,
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "scheduled_for": iso(run.scheduled_for),
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_s": run.duration_s,
        "steps": [
            {
                "index": s.index,
                "command": s.command,
                "status": s.status.value,
                "exit_code": s.exit_code,
                "started_at": iso(s.started_at),
                "finished_at": iso(s.finished_at),
            }
            for s in run.steps
        ],
    }
    if nodes:
        out["nodes"] = [node_dict(n, n.step_index) for n in (run.nodes if all_nodes else run.executed_nodes)]
        out["artifacts"] = [
            {"step_index": a.step_index, "name": a.name, "path": a.path, "size": a.size, "sha256": a.sha256}
            for a in run.artifacts
        ]
    return out


def _commands(definition: Any) -> list:
    """The job's commands from its stored definition (``[]`` when it holds none)."""
    if not isinstance(definition, dict):
        return []
    job = definition.get("job")
    commands = definition.get("commands") or (job.get("commands") if isinstance(job, dict) else None)
    return commands if isinstance(commands, list) else []


def job_dict(job: JobRecord, next_fires: list[datetime]) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "environment": job.environment,
        "cron": job.cron,
        "timezone": job.timezone,
        "next_fire": iso(next_fires[0]) if next_fires else None,
        "next_fires": [iso(t) for t in next_fires],
        "commands": _commands(job.definition),
    }
