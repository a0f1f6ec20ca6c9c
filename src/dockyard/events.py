"""Run events: one event type, frozen payloads built from domain records.

An event is written to the store's outbox (``store/outbox.py``) in the same transaction as
the run change it reports (for the final event: the transition that makes the run final) and
delivered to the configured sinks (``dockyard.sinks``) at least once, each delivery carrying
the event's idempotency :attr:`Event.key`. See docs/events.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from dockyard.domain import FAILED_STATUSES, NodeResult, RunRecord, RunStatus, StepResult
from dockyard.text import storable

MAX_FAILED_NODES = 20  # failed nodes listed in a final event
MAX_MESSAGE_CHARS = 1000  # of each failed node's message (messages are scrubbed when stored)


class RunEvent(StrEnum):
    QUEUED = "run.queued"
    STARTED = "run.started"
    STEP_FINISHED = "step.finished"
    NODE_FAILED = "node.failed"
    SUCCEEDED = "run.succeeded"
    FAILED = "run.failed"
    CANCELLED = "run.cancelled"
    TIMED_OUT = "run.timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_EVENTS


FINAL_EVENTS = frozenset({RunEvent.SUCCEEDED, RunEvent.FAILED, RunEvent.CANCELLED, RunEvent.TIMED_OUT})


def final_event_type(status: RunStatus | str, reason: str | None) -> RunEvent:
    """The event of a run that ended with ``status`` and ``reason``: ``error`` with reason
    ``timeout`` is ``run.timed_out``; any other ``error`` (``step_failed``, ``worker_lost``,
    ``start_timeout``, ``setup_failed``, ``internal_error``) is ``run.failed``."""
    status = RunStatus(status)
    if status is RunStatus.SUCCESS:
        return RunEvent.SUCCEEDED
    if status is RunStatus.CANCELLED:
        return RunEvent.CANCELLED
    if status is RunStatus.ERROR:
        return RunEvent.TIMED_OUT if reason == "timeout" else RunEvent.FAILED
    raise ValueError(f"run status {status.value!r} is not final")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _bounded(text: str | None, limit: int = MAX_MESSAGE_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


@dataclass(frozen=True)
class FailedNode:
    unique_id: str
    name: str
    resource_type: str
    status: str
    step_index: int | None
    message: str | None

    @classmethod
    def of(cls, node: NodeResult) -> FailedNode:
        return cls(
            node.unique_id,
            node.name,
            node.resource_type,
            node.status,
            node.step_index,
            _bounded(node.message),
        )


@dataclass(frozen=True)
class StepSummary:
    index: int
    command: str
    status: str
    exit_code: int | None
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, step: StepResult) -> StepSummary:
        return cls(
            step.index,
            step.command,
            step.status.value,
            step.exit_code,
            _iso(step.started_at),
            _iso(step.finished_at),
        )


@dataclass(frozen=True)
class RunPayload:
    """What every event says about its run (a snapshot at the time of the event)."""

    run_id: int
    job_id: int | None
    job: str
    environment: str
    trigger: str
    cause: str | None
    attempt: int
    retry_of: int | None
    status: str
    reason: str | None
    has_warnings: bool
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    #: final events: the steps and the failed nodes (at most MAX_FAILED_NODES, messages bounded)
    steps: tuple[StepSummary, ...] = ()
    failed_nodes: tuple[FailedNode, ...] = ()
    failed_nodes_total: int = 0
    #: step.finished: the step; node.failed: the node
    step: StepSummary | None = None
    node: FailedNode | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("step", "node"):
            if data[key] is None:
                del data[key]
        if not self.steps and not self.failed_nodes and not self.failed_nodes_total:
            for key in ("steps", "failed_nodes", "failed_nodes_total"):
                del data[key]
        return data


def run_payload(
    run: RunRecord,
    *,
    final: bool = False,
    step: StepResult | None = None,
    node: NodeResult | None = None,
) -> RunPayload:
    """The payload of an event of ``run``; with ``final`` it lists the steps and failed nodes."""
    failed: list[NodeResult] = [n for n in run.nodes if n.status in FAILED_STATUSES] if final else []
    return RunPayload(
        run_id=run.id,
        job_id=run.job_id,
        job=run.job,
        environment=run.environment,
        trigger=run.trigger,
        cause=run.cause,
        attempt=run.attempt,
        retry_of=run.retry_of,
        status=run.status.value,
        reason=run.reason,
        has_warnings=run.has_warnings,
        created_at=_iso(run.created_at),
        started_at=_iso(run.started_at),
        finished_at=_iso(run.finished_at),
        duration_s=run.duration_s,
        steps=tuple(StepSummary.of(s) for s in sorted(run.steps, key=lambda s: s.index)) if final else (),
        failed_nodes=tuple(FailedNode.of(n) for n in failed[:MAX_FAILED_NODES]),
        failed_nodes_total=len(failed),
        step=StepSummary.of(step) if step is not None else None,
        node=FailedNode.of(node) if node is not None else None,
    )


@dataclass(frozen=True)
class Event:
    """One event as stored in the outbox and handed to a sink's ``deliver``.

    ``key`` is the idempotency key: the same event delivered twice (at-least-once delivery
    after a crash) carries the same key; a sink or its consumer deduplicates on it."""

    id: int
    key: str
    type: RunEvent
    run_id: int | None
    created_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "type": self.type.value,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "payload": self.payload,
        }


# -- idempotency keys ----------------------------------------------------------------------
def final_key(run_id: int) -> str:
    """A run has one final event whatever path ended it."""
    return f"run:{run_id}:final"


def queued_key(run_id: int) -> str:
    return f"run:{run_id}:queued"


def started_key(run_id: int, epoch: int) -> str:
    """A run requeued by a graceful shutdown starts again under a new lease epoch."""
    return f"run:{run_id}:started:{epoch}"


def step_key(run_id: int, index: int, epoch: int) -> str:
    return f"run:{run_id}:step:{index}:{epoch}"


def node_key(run_id: int, step_index: int, unique_id: str, epoch: int) -> str:
    """The node's id in the key, or its digest when it is long or holds characters a store
    cannot keep (a NUL byte, a lone surrogate): a key is unique and always storable."""
    key = f"run:{run_id}:node:{step_index}:{unique_id}:{epoch}"
    if len(key) <= 255 and storable(unique_id) == unique_id:
        return key
    digest = hashlib.sha256(unique_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"run:{run_id}:node:{step_index}:sha256-{digest}:{epoch}"
