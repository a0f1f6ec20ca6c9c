"""Prefect tasks for the flows ``dockyard export prefect`` writes (``pip install
"dockyard[prefect]"``): :func:`trigger_task` queues the job's run and returns its id; a
:func:`model_task` per model (or group) waits for its models' results and fails with dbt's
error; its retry (Prefect's ``retries``) queues ``dbt build --select <model>+`` of the job,
whose results the downstream tasks then read. Server and token: ``server`` (or
``DOCKYARD_URL``) and ``DOCKYARD_TOKEN``."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.runtime import flow_run, task_run

from dockyard.client import Client
from dockyard.integrations import nodes as results


@task(name="dockyard trigger")
def trigger_task(job: str | int, server: str | None = None, overrides: dict | None = None) -> int:
    """Queue a run of ``job`` (name or id); a retried task gets the same run."""
    with Client(server) as client:
        run = client.trigger(
            job,
            cause=f"Prefect flow run {flow_run.name}",
            idempotency_key=f"prefect-{flow_run.id}-trigger",
            **(overrides or {}),
        )
    get_run_logger().info("dockyard run %s queued: %s/api/v1/runs/%s", run.id, client.url, run.id)
    return run.id


@task(name="dockyard model", retry_delay_seconds=5)
def model_task(
    run_id: int,
    nodes: list[str],
    select: list[str],
    server: str | None = None,
    poll: float = 5.0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """The results of ``nodes`` in run ``run_id`` (or the newest retry that ran them)."""
    logger = get_run_logger()
    with Client(server) as client:
        if task_run.run_count > 1:
            run = results.retry(client, run_id, select, f"prefect-{task_run.id}-{task_run.run_count}")
            logger.info("retry %s: dockyard run %s builds %s+", task_run.run_count, run.id, " ".join(select))
        outcome = results.wait(client, run_id, nodes, poll=poll, timeout=timeout)
    for node, result in outcome.results.items():
        logger.info("%s %s in run %s", node, result.get("status"), result.get("run_id"))
    return outcome.results
