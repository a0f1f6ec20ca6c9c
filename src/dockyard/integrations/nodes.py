"""Waiting for a model's result in a dockyard run, and retrying a model with what depends on
it: the semantics the Airflow operator, the Prefect task and the Dagster resource share.

A per-model task knows the run its DAG triggered (the *root* run). Its model's result is the
one of the newest run of the root's *family* (the root and the retries of its models, runs
whose cause is ``dockyard retry of run <root>: ...``) that has a final result for it; while a
newer run of the family is still going, the task waits. A retry queues ``dbt build --select
<model>+`` of the same job, so the downstream tasks then find their models' results there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from dockyard.client import AsyncClient, Client, Run
from dockyard.errors import DockyardError

DONE = frozenset({"success", "pass", "warn", "error", "fail", "skipped", "runtime error"})
FAILED = frozenset({"error", "fail", "runtime error", "skipped"})  # dbt skips what a failure holds up
RETRY_CAUSE = "dockyard retry of run {root}: "


class ModelFailed(DockyardError):
    """A model (or a group's model) failed or was not run; the message is dbt's error."""


@dataclass(frozen=True)
class Outcome:
    """``done``: every node has a final result (``results``: its node result and run id);
    ``failures``: the messages of those that failed or were not run."""

    done: bool
    results: dict[str, dict]
    failures: list[str]

    def raise_for_failures(self) -> None:
        if self.failures:
            raise ModelFailed("; ".join(self.failures))


def retry_cause(root: int, select: list[str]) -> str:
    return RETRY_CAUSE.format(root=root) + " ".join(select)


def family_filters(root: Run) -> dict:
    return {"job_id": root.job_id, "created_after": root.raw.get("created_at"), "order_by": "-id", "limit": 100}


def family(root: Run, later: list[Run]) -> list[Run]:
    """The root and its retries, newest first."""
    prefix = RETRY_CAUSE.format(root=root.id)
    retries = [r for r in later if r.id > root.id and str(r.raw.get("cause") or "").startswith(prefix)]
    return sorted(retries, key=lambda r: -r.id) + [root]


def decide(runs: list[Run], nodes: list[str]) -> Outcome:
    """Each node's result from the newest run (of ``runs``, newest first, with their nodes)
    that has a final one; not done while a newer run is still going."""
    results: dict[str, dict] = {}
    failures: list[str] = []
    for node in nodes:
        for run in runs:
            found = run.node(node)
            if found and found.get("status") in DONE:
                results[node] = {**found, "run_id": run.id}
                if found["status"] in FAILED:
                    why = found.get("message") or ("an upstream node failed" if found["status"] == "skipped" else "")
                    failures.append(f"{node} {found['status']} in run {run.id}: {why}".strip())
                break
            if not run.final:
                return Outcome(False, results, failures)
        else:
            last = runs[0]
            if not last.succeeded:
                failures.append(f"{node} was not run: run {last.id} ended {last.status} ({last.reason or 'no reason'})")
            results[node] = {"unique_id": node, "status": "not run", "run_id": last.id}
    return Outcome(True, results, failures)


# Final runs never change: kept on the client (one per server and token in a process: see
# dockyard.integrations.airflow.shared_client), so that the many model tasks one process runs
# (a worker, or ``dag.test()``, which runs every task in one) fetch a finished run with all
# its node results once, not once per task.
_FINAL_MAX = 64
_FINAL_LOCK = threading.Lock()


def _finals(client: Client | AsyncClient) -> OrderedDict[int, Run]:
    finals = getattr(client, "_dockyard_final_runs", None)
    if finals is None:
        finals = OrderedDict()
        client._dockyard_final_runs = finals  # type: ignore[union-attr]
    return finals


def _known(client: Client | AsyncClient, run_id: int) -> Run | None:
    with _FINAL_LOCK:
        return _finals(client).get(run_id)


def _keep(client: Client | AsyncClient, run: Run) -> Run:
    if run.final:
        with _FINAL_LOCK:
            finals = _finals(client)
            finals[run.id] = run
            while len(finals) > _FINAL_MAX:
                finals.popitem(last=False)
    return run


def check(client: Client, root_id: int, nodes: list[str]) -> Outcome:
    root = _known(client, root_id) or _keep(client, client.run(root_id))
    later = [
        _known(client, r.id) or _keep(client, client.run(r.id))
        for r in family(root, client.runs(**family_filters(root)))[:-1]
    ]
    return decide([*later, root], nodes)


async def check_async(client: AsyncClient, root_id: int, nodes: list[str]) -> Outcome:
    root = _known(client, root_id) or _keep(client, await client.run(root_id))
    later = [
        _known(client, r.id) or _keep(client, await client.run(r.id))
        for r in family(root, await client.runs(**family_filters(root)))[:-1]
    ]
    return decide([*later, root], nodes)


def retry(client: Client, root_id: int, select: list[str], key: str) -> Run:
    """Queue ``dbt build --select <model>+ ...`` of the root's job (``key``: one run per
    task try, however often it is asked)."""
    root = client.run(root_id)
    command = "dbt build --select " + " ".join(f"{s}+" for s in select)
    return client.trigger(
        root.job_id, steps_override=[command], cause=retry_cause(root_id, select), idempotency_key=key[:255]
    )


def wait(client: Client, root_id: int, nodes: list[str], *, poll: float = 5.0, timeout: float | None = None) -> Outcome:
    """Block until every node has a result; raises :class:`ModelFailed` for failures."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        outcome = check(client, root_id, nodes)
        if outcome.done:
            outcome.raise_for_failures()
            return outcome
        if deadline is not None and time.monotonic() >= deadline:
            raise ModelFailed(f"no result for {', '.join(nodes)} in run {root_id} after {timeout:g} s")
        time.sleep(poll)
