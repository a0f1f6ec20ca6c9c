"""Plain value objects shared by the runner, the store and every front-end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class RunStatus(StrEnum):
    """Run lifecycle; ``code`` is dbt Cloud's numeric status."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def code(self) -> int:
        return _CODES[self]

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED)

    @classmethod
    def from_code(cls, code: int) -> RunStatus:
        return {v: k for k, v in _CODES.items()}[code]


_CODES = {
    RunStatus.QUEUED: 1,
    RunStatus.STARTING: 2,
    RunStatus.RUNNING: 3,
    RunStatus.SUCCESS: 10,
    RunStatus.ERROR: 20,
    RunStatus.CANCELLED: 30,
}


class StepStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# The status of a node that a step only compiled (``dbt compile``, ``docs generate``, ``ls``,
# ``show``...): dbt reports ``success`` for it, but nothing was built, tested or loaded.
COMPILED = "compiled"
# Node statuses (run_results.json / sources.json) that are a failure of the node.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})


@dataclass
class NodeResult:
    """One dbt node's outcome within one step (model, test, seed, snapshot, source)."""

    unique_id: str
    name: str = ""
    resource_type: str = ""
    # started | success | error | fail | warn | pass | skipped | runtime error... (dbt's), or
    # ``compiled`` (:data:`COMPILED`): a step that compiles without executing compiled it
    status: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    execution_time_s: float | None = None
    rows_affected: int | None = None
    adapter_response: dict | None = None
    message: str | None = None
    compiled_path: str | None = None
    thread: str | None = None
    step_index: int | None = None  # filled when read back from the store

    @property
    def executed(self) -> bool:
        """False for a node a step only compiled (``status == "compiled"``)."""
        return self.status != COMPILED


@dataclass
class StepResult:
    index: int
    command: str
    status: StepStatus = StepStatus.QUEUED
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class ArtifactRef:
    step_index: int
    name: str  # e.g. manifest.json
    path: str  # relative to the run's artifact folder, e.g. step-2/manifest.json
    size: int = 0
    sha256: str = ""


@dataclass
class RunRecord:
    id: int
    job_id: int | None
    job: str
    environment: str
    status: RunStatus
    reason: str | None = None
    trigger: str = "manual"
    cause: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    scheduled_for: datetime | None = None
    attempt: int = 1
    retry_of: int | None = None
    has_warnings: bool = False
    worker_id: str | None = None
    artifacts_dir: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    nodes: list[NodeResult] = field(default_factory=list)
    artifacts: list[ArtifactRef] = field(default_factory=list)

    @property
    def status_code(self) -> int:
        return self.status.code

    @property
    def executed_nodes(self) -> list[NodeResult]:
        """The run's node results that are executions: without those of steps that only
        compiled (``docs generate``, ``compile``, ``ls``, ``show``...)."""
        return [n for n in self.nodes if n.executed]

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 3)
        return None


@dataclass
class JobRecord:
    id: int
    name: str
    environment: str
    cron: str | None = None
    timezone: str = "UTC"
    definition: dict = field(default_factory=dict)
    active: bool = True
