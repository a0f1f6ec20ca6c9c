"""Write a running run's steps, node results, logs and artifacts to the store as they happen."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from dockyard.domain import ArtifactRef, NodeResult, StepStatus
from dockyard.errors import StoreError
from dockyard.runner.plan import Recorder
from dockyard.store.store import Store

CANCEL_POLL_S = 1.0


class RunObserver(Protocol):
    """What a front-end may watch during a foreground run (progress display)."""

    def step_started(self, index: int, command: str) -> None: ...
    def step_finished(self, index: int, status: StepStatus) -> None: ...
    def nodes(self, index: int, nodes: list[NodeResult]) -> None: ...
    def log(self, index: int, line: str) -> None: ...


class StoreRecorder(Recorder):
    """The executor's Recorder: persists every callback at once, then tells the observer.

    :meth:`tick` (called by the executor's loop) reads the run's cancel flag every
    :data:`CANCEL_POLL_S` seconds, so ``dockyard cancel`` (or the API) also stops a foreground
    ``dockyard run``; ``executor`` is set by :meth:`dockyard.app.App.execute`."""

    def __init__(self, store: Store, run_id: int, commands: list[str], observer: RunObserver | None = None):
        self.store = store
        self.run_id = run_id
        self.commands = commands
        self.observer = observer
        self.executor = None
        self._polled = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if self.executor is None or now - self._polled < CANCEL_POLL_S:
            return
        self._polled = now
        try:
            if self.store.leases.cancel_requested(self.run_id):
                self.executor.cancel()
        except StoreError:
            pass  # the store is away: the final write still reads the flag

    def step_started(self, index: int, at: datetime) -> None:
        self.store.runs.start_step(self.run_id, index, at)
        if self.observer:
            self.observer.step_started(index, self.commands[index - 1])

    def nodes(self, index: int, nodes: list[NodeResult]) -> None:
        if nodes:
            self.store.runs.upsert_nodes(self.run_id, index, nodes)
            if self.observer:
                self.observer.nodes(index, nodes)

    def log(self, index: int, line: str) -> None:
        if self.observer:
            self.observer.log(index, line)

    def step_finished(self, index: int, status: StepStatus, exit_code: int | None, at: datetime, log_path: str) -> None:
        self.store.runs.finish_step(self.run_id, index, status, exit_code, at, log_path=log_path)
        if self.observer:
            self.observer.step_finished(index, status)

    def artifacts(self, index: int, refs: list[ArtifactRef]) -> None:
        if refs:
            self.store.runs.add_artifacts(self.run_id, refs)
