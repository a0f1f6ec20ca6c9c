"""What the executor is asked to run, what it reports to, and what it answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard.domain import ArtifactRef, NodeResult, RunStatus, StepStatus


@dataclass
class StepPlan:
    index: int  # 1-based position in the job; names logs/step-<index>.log
    command: str  # as written in the job, e.g. "dbt run --select tag:daily"
    argv: list[str]  # the args after "dbt" (already includes --target, --target-path...)
    # fork mode only: the step's dbt child first runs `dbt parse` (the step's project, profile,
    # target, vars and target folder), then calls prelude(<its target folder>) (raising fails
    # the step before anything is built), then runs argv with the parsed manifest, without
    # parsing again (see dockyard.runner.fork)
    prelude: Callable[[Path], Any] | None = None


@dataclass
class RunPlan:
    run_id: int
    project_dir: Path
    env: dict[str, str]  # the complete environment for dbt
    steps: list[StepPlan]
    # the environment's target folder: keeps dbt's partial parse between runs; each run's dbt
    # writes into a folder of its own, <run_dir>/target (see dockyard.runner.workspace)
    target_path: Path
    run_dir: Path  # <store dir>/runs/<run_id>: logs/step-<n>.log and artifacts/step-<n>/<file>
    secrets: list[str] = field(default_factory=list)  # plus DBT_ENV_SECRET_* values from env
    timeout_seconds: float = 7200
    grace_seconds: float = 10.0  # SIGINT → SIGTERM
    mode: str = "fork"  # "fork" | "subprocess" (see dockyard.runner.invocation)
    kill_after_seconds: float = 5.0  # SIGTERM → SIGKILL
    preload: bool = True  # fork mode: fork dbt from this process with dbt already imported
    # triggers.fresh_sources_only: the folder keeping the sources.json of the job's last
    # successful run (dbt's --state for source_status:fresher); None when not asked
    fresh_sources_state: Path | None = None
    # a PostgreSQL target: the executor follows dbt's sessions and cancels what a killed dbt
    # left running (see dockyard.runner.sessions); None for other warehouses
    warehouse: Any = None
    warehouse_target: str | None = None  # the profiles.yml target and folder, for the reaper
    warehouse_profiles_dir: str | None = None
    # what of dockyard's files dbt must not see (dockyard.runner.isolation.FileView); None: all
    view: Any = None
    # the file locked around steps that write into the project folder (dbt deps, dbt clean);
    # None: project.lock next to the environments' target folders (<state_dir>/targets/)
    project_lock: Path | None = None
    # lines dockyard writes at the top of the first step's log (a pull-request build without
    # a base manifest says so there)
    notes: list[str] = field(default_factory=list)
    # warm runs (dockyard.runner.warm): the worker's pool of warm parents and the name of this
    # run's one (its environment); None: every step parses in its own child
    warm: Any = None
    warm_name: str = ""


class Recorder(ABC):
    """Where the executor reports a run as it happens (the store, a terminal, a test).

    The five reports are abstract; the hooks after them do nothing unless a recorder needs
    them (a worker's heartbeat in :meth:`tick`, the process group for the reaper...)."""

    #: the executor running this recorder's run (set by whoever starts it; ``tick`` may
    #: call ``executor.cancel()``)
    executor: Any = None

    @abstractmethod
    def step_started(self, index: int, at: datetime) -> None: ...

    @abstractmethod
    def nodes(self, index: int, nodes: list[NodeResult]) -> None:
        """Nodes whose state changed (full state of each); batched, at most every
        ~0.25 s while the step runs, and once at step end after reconciliation."""

    @abstractmethod
    def log(self, index: int, line: str) -> None:
        """One scrubbed log line, live."""

    @abstractmethod
    def step_finished(self, index: int, status: StepStatus, exit_code: int | None, at: datetime, log_path: str) -> None:
        """``log_path`` is relative to the run folder (``logs/step-<n>.log``), ``""`` for a
        step that never started."""

    @abstractmethod
    def artifacts(self, index: int, refs: list[ArtifactRef]) -> None: ...

    def process_started(self, index: int, pgid: int) -> None:  # noqa: B027 - a hook: nothing by default
        """A step's dbt process group started."""

    def warehouse_sessions(self, doc: dict) -> None:  # noqa: B027 - a hook: nothing by default
        """dbt opened new warehouse connections (a worker stores them for the reaper)."""

    def tick(self) -> None:  # noqa: B027 - a hook: nothing by default
        """Called from the executor's loop about every 0.1 s: a worker heartbeats here; it
        may call ``executor.cancel()``, or raise to abandon the run (which kills dbt)."""

    def drain(self) -> None:  # noqa: B027 - a hook: nothing by default
        """Write what was kept while the store was away (before the run's final write)."""


@dataclass
class RunOutcome:
    status: RunStatus
    reason: str | None = None  # None | "step_failed" | "timeout" | "cancelled"
    has_warnings: bool = False
