"""dbt structured events and artifacts → :class:`dockyard.domain.NodeResult`.

An *event* here is the dict form of one dbt structured log event, the shape of a line of
``dbt --log-format json`` (and of ``dbt_common.events.functions.msg_to_dict``)::

    {"info": {"name": "LogModelResult", "msg": "...", "level": "info", "ts": "...Z", ...},
     "data": {"node_info": {...}, "status": "...", "execution_time": 0.12, ...}}

Event names and fields were read in dbt-core 1.11 (``dbt/events/types.py`` and the
generated ``dbt/events/core_types_pb2.py``; who fires them: ``dbt/task/runnable.py``
``call_runner`` (NodeStart, NodeFinished), ``_mark_dependent_errors`` (MarkSkippedChildren),
``_handle_thread_exception`` (GenericExceptionOnRun), ``dbt/task/base.py`` ``on_skip``
(SkippingDetails), ``dbt/task/run.py``, ``seed.py``, ``snapshot.py``, ``test.py``,
``freshness.py``, ``function.py`` (LogStartLine and the Log*Result events)).

``node_info`` (dbt's NodeInfo) carries ``unique_id``, ``node_name``, ``resource_type``,
``node_status``, ``node_started_at`` / ``node_finished_at`` (naive UTC ISO strings, ``""``
when unset), ``node_path`` and ``materialized``. ``NodeFinished.run_result`` (dbt's
RunResultMsg) carries ``status``, ``message``, ``thread``, ``execution_time``,
``num_failures``, ``timing_info`` and ``adapter_response``.

NodeStart and NodeFinished are debug-level events: the in-process (fork) runner sees them
through its callback, a ``--log-format json`` subprocess at the default log level does not;
the ``Log*Result`` events carry status and timing in both, and ``run_results.json`` is
authoritative at step end (:meth:`NodeTracker.reconcile`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from dockyard.dbt.command import executes_nodes
from dockyard.domain import COMPILED, NodeResult

# Events that start a node.
START_EVENTS = frozenset({"NodeStart", "LogStartLine"})
# Events that report a node's outcome (fired once per node, after it ran).
RESULT_EVENTS = frozenset(
    {
        "LogModelResult",  # Q012 run/build: models
        "LogTestResult",  # Q007 test/build: data and unit tests
        "LogSeedResult",  # Q016 seed/build
        "LogSnapshotResult",  # Q015 snapshot/build
        "LogFreshnessResult",  # Q018 source freshness
        "LogFunctionResult",  # Q047 UDFs (dbt 1.11)
        "LogNodeNoOpResult",  # Q019 nodes with nothing to do (e.g. ephemeral in build)
        "LogNodeResult",  # Q008 generic result line
    }
)
# Every event name the runner forwards from dbt; all others are only log text.
NODE_EVENTS = (
    START_EVENTS
    | RESULT_EVENTS
    | frozenset(
        {
            "NodeFinished",  # Q025 final RunResult of a node (debug level)
            "SkippingDetails",  # Q034 a node skipped (upstream failure, on-run-start failure)
            "MarkSkippedChildren",  # Z033 a node failed; its children will be skipped
            "GenericExceptionOnRun",  # W004 unhandled exception on a worker thread
        }
    )
)

# Node statuses that are not an outcome yet.
RUNNING_STATUSES = frozenset({"", "started", "compiling", "executing"})
WARN_STATUSES = frozenset({"warn"})


def parse_ts(value: Any) -> datetime | None:
    """dbt timestamps (``...Z``, ``+00:00`` or naive UTC) → aware UTC datetime."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _rows_affected(adapter_response: Any) -> int | None:
    if not isinstance(adapter_response, Mapping):
        return None
    rows = adapter_response.get("rows_affected")
    if isinstance(rows, bool) or not isinstance(rows, (int, float)):
        return None
    rows = int(rows)
    return rows if rows >= 0 else None


def _clean_adapter_response(adapter_response: Any) -> dict | None:
    """Struct → dict; protobuf turns integers into floats, turn whole floats back."""
    if not isinstance(adapter_response, Mapping) or not adapter_response:
        return None
    out = {}
    for key, val in adapter_response.items():
        if isinstance(val, float) and val.is_integer():
            val = int(val)
        out[key] = val
    return out


def _timing_bounds(timing: Any) -> tuple[datetime | None, datetime | None]:
    starts, ends = [], []
    for item in timing or []:
        if not isinstance(item, Mapping):
            continue
        s, e = parse_ts(item.get("started_at")), parse_ts(item.get("completed_at"))
        if s:
            starts.append(s)
        if e:
            ends.append(e)
    return (min(starts) if starts else None, max(ends) if ends else None)


def _split_unique_id(unique_id: str) -> tuple[str, str]:
    """``model.pkg.name`` → (``model``, ``name``); tests/sources have more parts."""
    parts = unique_id.split(".")
    if len(parts) < 3:
        return "", unique_id
    resource_type = parts[0]
    if resource_type == "test" and len(parts) >= 4:
        return resource_type, parts[2]
    if resource_type == "source" and len(parts) >= 4:
        return resource_type, ".".join(parts[2:])
    return resource_type, parts[-1]


def _node_from_info(info: Mapping) -> NodeResult | None:
    uid = info.get("unique_id") or ""
    if not uid:
        return None
    return NodeResult(
        unique_id=uid,
        name=info.get("node_name") or "",
        resource_type=info.get("resource_type") or "",
        started_at=parse_ts(info.get("node_started_at")),
    )


def _apply_run_result(node: NodeResult, rr: Mapping) -> None:
    if rr.get("status"):
        node.status = str(rr["status"])
    message = rr.get("message")
    if message not in (None, "", "None"):
        node.message = str(message)
    if rr.get("thread"):
        node.thread = str(rr["thread"])
    if isinstance(rr.get("execution_time"), (int, float)):
        node.execution_time_s = float(rr["execution_time"])
    started, finished = _timing_bounds(rr.get("timing_info"))
    node.started_at = started or node.started_at
    node.finished_at = finished or node.finished_at
    response = _clean_adapter_response(rr.get("adapter_response"))
    if response is not None:
        node.adapter_response = response
        node.rows_affected = _rows_affected(response)


def node_update(event: Mapping) -> NodeResult | None:
    """What one event says about one node, as a partial :class:`NodeResult`.

    Fields the event says nothing about stay ``None``/``""``; :func:`merge` folds updates
    into the node's current state. Returns ``None`` for events about no node.
    """
    info = event.get("info") or {}
    data = event.get("data") or {}
    name = info.get("name", "")
    node_info = data.get("node_info") or {}

    if name == "MarkSkippedChildren":
        uid = data.get("unique_id") or ""
        if not uid:
            return None
        rtype, short = _split_unique_id(uid)
        node = NodeResult(unique_id=uid, name=short, resource_type=rtype)
        _apply_run_result(node, data.get("run_result") or {})
        if data.get("status"):
            node.status = str(data["status"])
        return node

    if name == "GenericExceptionOnRun":
        node = _node_from_info(node_info)
        if node is None:
            uid = data.get("unique_id") or ""
            if not uid:
                return None
            rtype, short = _split_unique_id(uid)
            node = NodeResult(unique_id=uid, name=short, resource_type=rtype)
        node.status = "error"
        node.message = str(data.get("exc") or "") or None
        return node

    node = _node_from_info(node_info)
    if node is None:
        return None

    if name in START_EVENTS:
        node.status = "started"
        return node

    if name == "SkippingDetails":
        node.status = "skipped"
        node.name = node.name or data.get("node_name") or ""
        node.resource_type = node.resource_type or data.get("resource_type") or ""
        return node

    if name == "NodeFinished":
        node.finished_at = parse_ts(node_info.get("node_finished_at"))
        node.status = node_info.get("node_status") or ""
        _apply_run_result(node, data.get("run_result") or {})
        return node

    if name in RESULT_EVENTS:
        node.finished_at = parse_ts(node_info.get("node_finished_at"))
        if name in ("LogTestResult", "LogFreshnessResult"):
            # test: pass/fail/warn/error; freshness: pass/warn/error/runtime error
            node.status = str(data.get("status") or node_info.get("node_status") or "")
        else:
            # LogModelResult.status is the adapter's message ("OK", "SELECT 5"), not a status
            node.status = str(node_info.get("node_status") or data.get("status") or "")
        if isinstance(data.get("execution_time"), (int, float)):
            node.execution_time_s = float(data["execution_time"])
        return node

    return None


_MERGE_FIELDS = [f.name for f in dataclasses.fields(NodeResult) if f.name != "unique_id"]


def merge(current: NodeResult, update: NodeResult) -> bool:
    """Fold ``update`` into ``current`` (non-empty fields win); True when anything changed.

    A node that already has an outcome does not go back to ``started``.
    """
    changed = False
    for fname in _MERGE_FIELDS:
        new = getattr(update, fname)
        if new is None or new == "":
            continue
        if fname == "status" and new in RUNNING_STATUSES and current.status not in RUNNING_STATUSES:
            continue
        if getattr(current, fname) != new:
            setattr(current, fname, new)
            changed = True
    return changed


def _with_result_details(node: NodeResult, result: Mapping) -> NodeResult:
    """Timing, adapter response and rows affected of one ``results[]`` entry."""
    node.started_at, node.finished_at = _timing_bounds(result.get("timing"))
    response = _clean_adapter_response(result.get("adapter_response"))
    if response is not None:
        node.adapter_response = response
        node.rows_affected = _rows_affected(response)
    return node


def results_from_run_results(run_results: Mapping, manifest: Mapping | None = None) -> list[NodeResult]:
    """Node results from a ``run_results.json`` (optionally named via ``manifest.json``)."""
    nodes_index: Mapping = {}
    if manifest:
        nodes_index = {**(manifest.get("nodes") or {}), **(manifest.get("sources") or {})}
    out = []
    for r in run_results.get("results") or []:
        uid = r.get("unique_id")
        if not uid:
            continue
        rtype, short = _split_unique_id(uid)
        mnode = nodes_index.get(uid) or {}
        node = NodeResult(
            unique_id=uid,
            name=mnode.get("name") or short,
            resource_type=mnode.get("resource_type") or rtype,
            status=str(r.get("status") or ""),
            execution_time_s=float(r["execution_time"]) if isinstance(r.get("execution_time"), (int, float)) else None,
            message=None if r.get("message") in (None, "") else str(r.get("message")),
            thread=r.get("thread_id") or None,
            compiled_path=mnode.get("compiled_path") or None,
        )
        out.append(_with_result_details(node, r))
    return out


def results_from_sources(sources: Mapping) -> list[NodeResult]:
    """Freshness results from a ``sources.json``."""
    out = []
    for r in sources.get("results") or []:
        uid = r.get("unique_id")
        if not uid:
            continue
        rtype, short = _split_unique_id(uid)
        message = r.get("error") or r.get("message")
        if not message and r.get("max_loaded_at_time_ago_in_s") is not None:
            message = f"max_loaded_at {r.get('max_loaded_at')} ({round(float(r['max_loaded_at_time_ago_in_s']))} s ago)"
        node = NodeResult(
            unique_id=uid,
            name=short,
            resource_type=rtype or "source",
            status=str(r.get("status") or ""),
            execution_time_s=float(r["execution_time"]) if isinstance(r.get("execution_time"), (int, float)) else None,
            message=str(message) if message else None,
            thread=r.get("thread_id") or None,
        )
        out.append(_with_result_details(node, r))
    return out


class NodeTracker:
    """The current state of every node of one step, fed event by event.

    :meth:`apply` folds an event in, :meth:`drain` hands over the nodes that changed since
    the last drain (full state of each, as copies), :meth:`reconcile` folds in the step's
    artifacts at the end.

    ``executes`` is False for a step whose command only compiles (see
    :func:`dockyard.dbt.command.executes_nodes`): its nodes' ``success`` is recorded as
    ``compiled``; errors and skips stay what they are. ``reconcile`` decides again from the
    run_results.json's ``args.which`` when it has one.
    """

    def __init__(self, *, executes: bool = True) -> None:
        self._nodes: dict[str, NodeResult] = {}
        self._dirty: dict[str, None] = {}
        self.executes = executes

    def _classify(self, node: NodeResult) -> NodeResult:
        if not self.executes and node.status == "success":
            return dataclasses.replace(node, status=COMPILED)
        return node

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, unique_id: str) -> NodeResult | None:
        return self._nodes.get(unique_id)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def update(self, node: NodeResult) -> bool:
        node = self._classify(node)
        current = self._nodes.get(node.unique_id)
        if current is None:
            self._nodes[node.unique_id] = dataclasses.replace(node)
            self._dirty[node.unique_id] = None
            return True
        if merge(current, node):
            self._dirty[node.unique_id] = None
            return True
        return False

    def apply(self, event: Mapping) -> NodeResult | None:
        """Fold one event in; returns the node's state when the event changed it."""
        update = node_update(event)
        if update is None:
            return None
        if self.update(update):
            return self._nodes[update.unique_id]
        return None

    def compiled_paths(self, paths: Mapping[str, str]) -> None:
        """Fold in compiled paths (sent by a fork-mode child from dbt's in-memory results)."""
        for uid, path in paths.items():
            if uid in self._nodes and path:
                self.update(NodeResult(unique_id=uid, compiled_path=str(path)))

    def drain(self) -> list[NodeResult]:
        out = [dataclasses.replace(self._nodes[uid]) for uid in self._dirty]
        self._dirty.clear()
        return out

    def all(self) -> list[NodeResult]:
        return [dataclasses.replace(n) for n in self._nodes.values()]

    def reconcile(
        self,
        run_results: Mapping | None = None,
        *,
        manifest: Mapping | None = None,
        sources: Mapping | None = None,
    ) -> None:
        """Fold in the step's artifacts; they win over what the events said."""
        args = run_results.get("args") if isinstance(run_results, Mapping) else None
        which = args.get("which") if isinstance(args, Mapping) else None
        if isinstance(which, str) and which:
            self.executes = executes_nodes(which)
        finals: Iterable[NodeResult] = []
        if run_results:
            finals = [*finals, *results_from_run_results(run_results, manifest)]
        if sources:
            finals = [*finals, *results_from_sources(sources)]
        for final in finals:
            final = self._classify(final)
            current = self._nodes.get(final.unique_id)
            if current is not None and final.status:
                # authoritative: the artifact's status replaces whatever the events said
                if current.status != final.status:
                    current.status = final.status
                    self._dirty[final.unique_id] = None
            self.update(final)
