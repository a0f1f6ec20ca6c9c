"""Airflow operators for the DAGs ``dockyard export airflow`` writes (``pip install
"dockyard[airflow]"``): :class:`DockyardTriggerOperator` queues the job's run and pushes its id
(XCom ``return_value``); a :class:`DockyardModelSensor` per model (or group) waits for its
models' results, deferred to the triggerer (:class:`DockyardNodeTrigger`) when ``deferrable``
(Airflow's ``operators.default_deferrable``), else poking with ``mode="reschedule"``, and
fails with dbt's error. A retry of a model task queues ``dbt build --select <model>+`` of the
job, whose results the downstream tasks then read.

The server is ``server`` (or ``DOCKYARD_URL``), the token ``DOCKYARD_TOKEN``; or both from the
Airflow connection ``conn_id`` (host = URL, password = token). Tokens never go into XCom or
the trigger's serialised arguments."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from typing import Any

from airflow.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from dockyard.client import AsyncClient, Client
from dockyard.integrations import nodes as results

try:  # Airflow 3
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator
except ImportError:  # Airflow 2
    from airflow.hooks.base import BaseHook
    from airflow.models import BaseOperator
    from airflow.sensors.base import BaseSensorOperator


def _default_deferrable() -> bool:
    try:
        from airflow.configuration import conf

        return conf.getboolean("operators", "default_deferrable", fallback=False)
    except Exception:  # noqa: BLE001 - no config: poke
        return False


def connection(server: str | None, conn_id: str | None) -> tuple[str | None, str | None]:
    """The server's URL and token: from ``conn_id`` when given, else ``server`` and the env."""
    if conn_id:
        conn = BaseHook.get_connection(conn_id)
        host = conn.host or ""
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        return host, conn.password
    return server, os.environ.get("DOCKYARD_TOKEN")


_CLIENTS: dict[tuple, Client] = {}
_ROOTS: dict[tuple, int] = {}  # (pid, dag id, DAG run id, trigger task) -> dockyard run id
_CLIENTS_LOCK = threading.Lock()


def shared_client(url: str | None, token: str | None) -> Client:
    """One :class:`Client` per server and token in this process, kept open: a new one costs
    about 40 ms (its TLS context), five times a poke's requests, and ``dag.test()`` or a
    worker runs many model tasks in one process. Keyed by the process id too, so a forked
    task process never shares its parent's connections."""
    digest = hashlib.sha256((token or "").encode()).hexdigest()
    key = (os.getpid(), url or os.environ.get("DOCKYARD_URL"), digest)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = Client(url, token)
        return client


def _key(context: Any, *parts: object) -> str:
    ti = context["ti"]
    return "-".join(str(p) for p in ("airflow", ti.dag_id, context["run_id"], ti.task_id, *parts))


class DockyardTriggerOperator(BaseOperator):
    """Queues a run of ``job`` (name or id) with ``overrides`` (the trigger fields); returns
    its id. A retried try returns the run of the first one (``Idempotency-Key``)."""

    template_fields = ("job", "cause")

    def __init__(
        self,
        *,
        job: str | int,
        server: str | None = None,
        conn_id: str | None = None,
        cause: str | None = None,
        overrides: dict | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.job, self.server, self.conn_id = job, server, conn_id
        self.cause, self.overrides = cause, dict(overrides or {})

    def execute(self, context: Any) -> int:
        url, token = connection(self.server, self.conn_id)
        cause = self.cause or f"Airflow {context['ti'].dag_id} {context['run_id']}"
        with Client(url, token) as client:
            run = client.trigger(self.job, cause=cause, idempotency_key=_key(context), **self.overrides)
        self.log.info("dockyard run %s queued: %s/api/v1/runs/%s", run.id, client.url, run.id)
        return run.id


class DockyardModelSensor(BaseSensorOperator):
    """Waits for the results of ``nodes`` (dbt unique ids) in the run of ``trigger_task_id``;
    fails with the models' errors. On a retry it first queues ``dbt build --select
    <select>+`` (once per try).

    A task with upstream model tasks runs once their models have results, when dbt is about
    to run (or running) its own: it polls inline, every ``near_poll`` seconds for up to
    ``near_wait``, before it reschedules (or defers), instead of coming back a whole
    ``poke_interval`` (and, rescheduled, a task start) later at every level of the DAG."""

    # nodes and select are the literal ids the export wrote: nothing to render, and with no
    # template field Airflow skips storing rendered fields, one API call per task
    template_fields: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        nodes: list[str],
        select: list[str],
        server: str | None = None,
        conn_id: str | None = None,
        trigger_task_id: str = "trigger",
        deferrable: bool | None = None,
        near_wait: float = 15.0,
        near_poll: float = 0.5,
        **kwargs: Any,
    ):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 5)
        super().__init__(**kwargs)
        self.nodes, self.select = list(nodes), list(select)
        self.server, self.conn_id, self.trigger_task_id = server, conn_id, trigger_task_id
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.near_wait, self.near_poll = near_wait, near_poll

    def _root(self, context: Any) -> int:
        """The run id the trigger task pushed; kept per DAG run in this process (an XCom read
        costs a round trip to Airflow's API, and ``dag.test()`` runs every task in one process;
        the trigger's idempotency key gives a retried trigger the same run)."""
        key = (os.getpid(), context["ti"].dag_id, context["run_id"], self.trigger_task_id)
        root = _ROOTS.get(key)
        if root is None:
            root = context["ti"].xcom_pull(task_ids=self.trigger_task_id)
            if root is None:
                raise AirflowException(f"no dockyard run id in the XCom of {self.trigger_task_id!r}")
            if len(_ROOTS) > 256:
                _ROOTS.clear()
            _ROOTS[key] = root = int(root)
        return root

    def _retry_if_retrying(self, context: Any, client: Client, root: int) -> None:
        try_number = context["ti"].try_number
        if try_number > 1:
            run = results.retry(client, root, self.select, _key(context, try_number))
            self.log.info("retry %s: dockyard run %s builds %s+", try_number, run.id, " ".join(self.select))

    def _check(self, client: Client, root: int) -> results.Outcome:
        """The nodes' outcome; polled inline for up to ``near_wait`` s when the upstream
        model tasks are done (this task's models are next in dbt's queue)."""
        outcome = results.check(client, root, self.nodes)
        if outcome.done or not set(self.upstream_task_ids) - {self.trigger_task_id}:
            return outcome
        deadline = time.monotonic() + self.near_wait
        while not outcome.done and time.monotonic() + self.near_poll < deadline:
            time.sleep(self.near_poll)
            outcome = results.check(client, root, self.nodes)
        return outcome

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        root = self._root(context)
        client = shared_client(*connection(self.server, self.conn_id))
        self._retry_if_retrying(context, client, root)
        outcome = self._check(client, root)
        if outcome.done:
            return self.execute_complete(context, {"results": outcome.results, "failures": outcome.failures})
        self.log.info("waiting for %s in the triggerer (DockyardNodeTrigger)", ", ".join(self.nodes))
        self.defer(
            trigger=DockyardNodeTrigger(root, self.nodes, self.server, self.conn_id, self.poke_interval),
            method_name="execute_complete",
        )

    def poke(self, context: Any) -> bool:
        root = self._root(context)
        client = shared_client(*connection(self.server, self.conn_id))
        self._retry_if_retrying(context, client, root)
        outcome = self._check(client, root)
        if outcome.done:
            self.execute_complete(context, {"results": outcome.results, "failures": outcome.failures})
        return outcome.done

    def execute_complete(self, context: Any, event: dict) -> dict:
        if event.get("failures"):
            raise AirflowException("; ".join(event["failures"]))
        for node, result in event["results"].items():
            self.log.info(
                "%s %s in run %s (%s s, %s rows)",
                node,
                result.get("status"),
                result.get("run_id"),
                result.get("execution_time_s"),
                result.get("rows_affected"),
            )
        return event["results"]


class DockyardNodeTrigger(BaseTrigger):
    """Polls the API in the triggerer until the nodes have results (asynchronously)."""

    def __init__(self, root: int, nodes: list[str], server: str | None, conn_id: str | None, poll: float = 5.0):
        super().__init__()
        self.root, self.nodes, self.server, self.conn_id, self.poll = root, list(nodes), server, conn_id, poll

    def serialize(self) -> tuple[str, dict]:
        return (
            "dockyard.integrations.airflow.DockyardNodeTrigger",
            {"root": self.root, "nodes": self.nodes, "server": self.server, "conn_id": self.conn_id, "poll": self.poll},
        )

    async def run(self):
        if self.conn_id:
            url, token = await asyncio.to_thread(connection, self.server, self.conn_id)
        else:
            url, token = connection(self.server, None)
        async with AsyncClient(url, token) as client:
            while True:
                outcome = await results.check_async(client, self.root, self.nodes)
                if outcome.done:
                    yield TriggerEvent({"results": outcome.results, "failures": outcome.failures})
                    return
                await asyncio.sleep(self.poll)
