"""``app.handoff``: ``dockyard run`` hands its run to a running server.

A worker slot of ``dockyard serve`` or ``dockyard worker`` has dbt imported and, with warm
runs (:mod:`dockyard.runner.warm`), the project's manifest parsed in memory; a foreground
``dockyard run`` imports dbt cold and parses every step. So when such a slot is alive on
this machine for this project's store, the CLI queues the run for it and follows it from
the store, showing the same progress a foreground run shows:

    handed = app.handoff.start("nightly", environment="prod")     # None: run it here
    run = app.handoff.follow(handed.run_id, observer, cancelled=lambda: stop_asked)

:meth:`Handoff.follow` turns what the worker writes (the steps' states in the store, the step
logs in the run folder, the node results) into the calls a
:class:`~dockyard.app.recorder.RunObserver` gets from a run in this process, so the CLI
renders both the same way. Only workers on this host count: a worker elsewhere would run its
own checkout, and the step logs it writes would be on its disk, not readable here.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard import clock, files
from dockyard.app.recorder import RunObserver
from dockyard.domain import RunRecord, RunStatus, StepStatus
from dockyard.errors import DockyardError, StoreError

CAUSE = "dockyard run (handed to the server)"
POLL_S = 0.25  # how often the store and the step logs are read
NODES_EVERY_S = 1.0  # node results (for "running: ...") are a heavier read
CHUNK = 65536
STOP_MARGIN_S = 30.0  # beyond the worker's heartbeat and dbt's grace period, after a cancel


@dataclass
class HandedRun:
    """A run queued for the server: its id, job, environment, whether its slot runs it warm."""

    run_id: int
    job: str
    environment: str
    warm: bool


class Handoff:
    """Decide whether a run goes to the server, queue it there, follow it, cancel it."""

    def __init__(self, app):  # the App (dockyard.app) this service belongs to
        self.app = app

    # -- deciding -------------------------------------------------------------------------------
    def live_workers(self) -> list[dict]:
        """Worker slots on this host whose heartbeat is fresh (the rule of ``dockyard status``:
        not stopped, a heartbeat within ``server.lost_after_seconds``)."""
        alive = self.app.store.leases.list_processes(alive_within_s=self.app.config.server.lost_after_seconds)
        host = socket.gethostname()
        return [p for p in alive if p["kind"] == "worker" and p.get("host") == host]

    def available(self) -> bool:
        """True when ``runner.hand_off`` is on and a live worker slot serves this store."""
        if not self.app.config.runner.hand_off:
            return False
        try:
            return bool(self.live_workers())
        except StoreError:
            return False  # the foreground run reports the store itself

    # -- queueing -------------------------------------------------------------------------------
    def start(self, ref: str | int, *, environment: str | None = None) -> HandedRun | None:
        """Queue a run of the job (trigger ``manual``) for the server's workers, with the checks
        a foreground run makes first (the environment, the profile target, no overlap with a
        running run of the job); None when no live worker slot would take it (or
        ``runner.hand_off`` is off): the caller runs it itself."""
        if not self.available():
            return None
        record, job = self.app.job(ref)
        env_name = environment or job.environment
        self.app.triggers.check_environment(env_name)
        self.app.project.target_for(env_name, self.app.job_target(record, job, env_name))
        # the foreground rule, one place: refuse to overlap a starting or running run of the job
        self.app.execution.refuse_overlap(record, job)
        self.app.triggers.check_queue(record.id)
        result = self.app.triggers.enqueue(
            record.id, environment=env_name, trigger="manual", cause=CAUSE, commands=job.all_commands, coalesce=False
        )
        env = self.app.config.environments[env_name]
        runner = self.app.config.runner
        warm = (
            runner.mode == "fork"
            and runner.preload is not False
            and (env.warm if env.warm is not None else runner.warm)
        )
        return HandedRun(int(result.run_id), record.name, env_name, bool(warm))

    def stop_wait_s(self) -> float:
        """How long :meth:`follow` waits for a cancelled run to end: the worker sees the flag at
        its next heartbeat, then dbt gets its grace period, then a margin."""
        return self.app.config.server.heartbeat_seconds + self.app.config.runner.grace_seconds + STOP_MARGIN_S

    # -- following ------------------------------------------------------------------------------
    def follow(
        self,
        run_id: int,
        observer: RunObserver,
        *,
        cancelled: Callable[[], bool] = lambda: False,
        poll_s: float = POLL_S,
    ) -> RunRecord:
        """Follow the run until it is final and return it (with its nodes). ``cancelled()``
        true (Ctrl-C) cancels it (:meth:`dockyard.app.runs.Runs.cancel`) and waits at most
        :meth:`stop_wait_s` for it to end: then the run is returned as it is, not final.
        Raises :class:`DockyardError` when the run can no longer end: queued while no worker
        slot is alive, or running on a worker that stopped renewing its lease."""
        watch = _Watch(self, run_id, observer)
        deadline: float | None = None
        while True:
            if deadline is None and cancelled():
                self.app.runs.cancel(run_id, final_ok=True)
                deadline = time.monotonic() + self.stop_wait_s()
            run = self.app.store.reader.runs.get_run_summary(run_id)
            watch.update(run)
            if run.status.is_final:
                return self.app.runs.get(run_id)
            if deadline is not None and time.monotonic() >= deadline:
                return self.app.runs.get(run_id)
            if deadline is None:
                watch.check_alive(run)
            tick = getattr(observer, "tick", None)  # an observer that draws may redraw now
            if tick is not None:
                tick()
            time.sleep(poll_s)


@dataclass
class _Watch:
    """What :meth:`Handoff.follow` has passed on so far: steps started and finished, how much
    of each step log was read (and its unfinished last line), the node states seen."""

    handoff: Handoff
    run_id: int
    observer: RunObserver
    started: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    offsets: dict[int, int] = field(default_factory=dict)
    partial: dict[int, bytes] = field(default_factory=dict)
    seen_nodes: dict[str, tuple] = field(default_factory=dict)
    nodes_read: float = 0.0
    waiting_since: float | None = None

    def update(self, run) -> None:
        root = self.handoff.app.runs.folder(run) / "logs"
        for step in sorted(run.steps, key=lambda s: s.index):
            if step.index in self.finished:
                continue
            if step.status == StepStatus.QUEUED:
                return  # not reached yet (or never: the run ended before it)
            if step.status == StepStatus.SKIPPED and step.index not in self.started:
                self.finished.add(step.index)  # as a foreground run reports it: no start, "skipped"
                self.observer.step_finished(step.index, step.status)
                continue
            if step.index not in self.started:
                self.started.add(step.index)
                self.observer.step_started(step.index, step.command)
            self._lines(root, step.index, final=step.status != StepStatus.RUNNING)
            if step.status == StepStatus.RUNNING:
                self._nodes(step.index)
                return  # later steps come after this one
            self._nodes(step.index, force=True)
            self.finished.add(step.index)
            self.observer.step_finished(step.index, step.status)

    def _lines(self, root, index: int, *, final: bool) -> None:
        """The step log's new complete lines (all of it once the step is final: the worker
        flushes the log before it records the step's end)."""
        while True:
            try:
                data = files.read_from(root, f"step-{index}.log", self.offsets.get(index, 0), CHUNK)
            except OSError:
                data = b""  # not created yet
            if not data:
                break
            self.offsets[index] = self.offsets.get(index, 0) + len(data)
            lines = (self.partial.pop(index, b"") + data).split(b"\n")
            self.partial[index] = lines.pop()
            for line in lines:
                self.observer.log(index, line.decode("utf-8", errors="replace"))
        if final and self.partial.get(index):
            self.observer.log(index, self.partial.pop(index).decode("utf-8", errors="replace"))

    def _nodes(self, index: int, *, force: bool = False) -> None:
        """The step's node results that changed since the last read (at most once a second
        while the step runs)."""
        now = time.monotonic()
        if not force and now - self.nodes_read < NODES_EVERY_S:
            return
        self.nodes_read = now
        run = self.handoff.app.store.reader.runs.get_run(self.run_id)
        changed = []
        for node in run.nodes:
            if node.step_index != index:
                continue
            key = (node.status, node.finished_at)
            if self.seen_nodes.get(f"{index}:{node.unique_id}") != key:
                self.seen_nodes[f"{index}:{node.unique_id}"] = key
                changed.append(node)
        if changed:
            self.observer.nodes(index, changed)

    def check_alive(self, run) -> None:
        """Stop following a run that cannot end: queued for ``lost_after_seconds`` with no live
        worker slot, or running under a lease not renewed for twice that (the scheduler marks
        such a run lost; without one it would stay ``running``)."""
        lost_after = self.handoff.app.config.server.lost_after_seconds
        if run.status == RunStatus.QUEUED:
            if self.handoff.live_workers():
                self.waiting_since = None
            elif self.waiting_since is None:
                self.waiting_since = time.monotonic()
            elif time.monotonic() - self.waiting_since > lost_after:
                raise DockyardError(
                    f"run {run.id} is queued and no worker slot is alive any more",
                    hint=f"it runs when a worker starts; 'dockyard cancel {run.id}' drops it, "
                    "'dockyard run --local' runs the job here",
                )
            return
        beat = getattr(run, "heartbeat_at", None)
        if beat is not None and (clock.now() - beat).total_seconds() > 2 * lost_after:
            raise DockyardError(
                f"run {run.id}: its worker ({run.worker_id}) stopped renewing it "
                f"{(clock.now() - beat).total_seconds():.0f} s ago",
                hint="the scheduler marks it lost (worker_lost); see 'dockyard status'",
            )
