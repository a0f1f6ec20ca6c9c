"""Workers: claim queued runs and execute them, renewing a fenced lease while dbt runs.

A worker slot is single-threaded (dbt is forked from it). While a run executes, the
executor calls :meth:`LeasedRecorder.tick` from its loop: every ``heartbeat_seconds``
the lease is renewed; a lost lease (another process now owns the run) or a failure to
renew for ``lost_after_seconds - 1`` raises :class:`FencedError`, which makes the
executor kill dbt at once. Writes that fail because the store is unreachable are kept
in order and written when it is back.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable

from dockyard import clock
from dockyard.app.recorder import StoreRecorder
from dockyard.crash import crash_point
from dockyard.domain import RunStatus
from dockyard.errors import FencedError, SetupError, StoreError
from dockyard.store.persist import persist, persist_until

log = logging.getLogger("dockyard.server.worker")


def process_id(kind: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{uuid.uuid4().hex[:6]}"


class LeasedRecorder(StoreRecorder):
    """A StoreRecorder whose writes are fenced by the run's lease epoch."""

    def __init__(
        self,
        store,
        run_id: int,
        epoch: int,
        commands: list[str],
        *,
        worker_id: str,
        heartbeat_s: float,
        lost_after_s: float,
        stopping: Callable[[], bool],
        grace_s: float,
    ):
        super().__init__(store, run_id, commands, None)
        self.epoch = epoch
        self.worker_id = worker_id
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        self.stopping = stopping
        self.grace_s = grace_s
        self.executor = None
        self.requeue = False
        self._pending: deque[Callable[[], None]] = deque()
        self._last_beat = self._last_ok = time.monotonic()
        self._stop_seen: float | None = None

    # every write goes through here: in order, fenced, kept while the store is away
    def _do(self, write: Callable[[], None]) -> None:
        self._pending.append(write)
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            try:
                self._pending[0]()
            except StoreError as exc:
                log.warning(
                    "run %s: store unreachable, keeping %d write(s): %s", self.run_id, len(self._pending), exc.what
                )
                return
            self._pending.popleft()
            self._last_ok = time.monotonic()

    def drain(self) -> None:
        """Write what was kept while the store was away, before the run is finished. Not
        possible for ``lost_after_s - 1`` seconds: the lease is as good as gone (FencedError)."""
        while True:
            self._flush()
            if not self._pending:
                return
            if time.monotonic() - self._last_ok >= self.lost_after_s - 1:
                raise FencedError(
                    f"run {self.run_id}: {len(self._pending)} write(s) not stored for "
                    f"{time.monotonic() - self._last_ok:.0f} s; giving the run up"
                )
            time.sleep(0.2)

    def step_started(self, index, at):
        self._do(lambda: self.store.runs.start_step(self.run_id, index, at, epoch=self.epoch))

    def nodes(self, index, nodes):
        if nodes:
            self._do(lambda: self.store.runs.upsert_nodes(self.run_id, index, nodes, epoch=self.epoch))

    def step_finished(self, index, status, exit_code, at, log_path):
        self._do(
            lambda: self.store.runs.finish_step(
                self.run_id, index, status, exit_code, at, log_path=log_path, epoch=self.epoch
            )
        )
        crash_point("step_finished")

    def artifacts(self, index, refs):
        if refs:
            self._do(lambda: self.store.runs.add_artifacts(self.run_id, refs, epoch=self.epoch))

    def process_started(self, index: int, pgid: int) -> None:
        self._do(lambda: self.store.runs.set_run_pgid(self.run_id, self.epoch, pgid))

    def warehouse_sessions(self, doc: dict) -> None:
        self._do(lambda: self.store.runs.set_run_fields(self.run_id, epoch=self.epoch, warehouse_sessions=doc))

    def tick(self) -> None:
        now = time.monotonic()
        if self.stopping() and self.executor is not None:
            self._stop_seen = self._stop_seen or now
            if now - self._stop_seen >= self.grace_s and not self.requeue:
                log.info("run %s: shutdown grace over, cancelling and requeueing", self.run_id)
                self.requeue = True
                self.executor.cancel()
        if now - self._last_beat < self.heartbeat_s:
            return
        self._last_beat = now
        try:
            self._flush()
            beat = self.store.leases.heartbeat_runs(self.worker_id, [(self.run_id, self.epoch)])
            # the slot is alive while it runs dbt: its process row too (the supervisor restarts
            # a slot whose row goes stale)
            self.store.leases.heartbeat_process(self.worker_id)
            self._last_ok = now
        except StoreError as exc:
            if now - self._last_ok >= self.lost_after_s - 1:
                raise FencedError(
                    f"run {self.run_id}: lease not renewed for {now - self._last_ok:.0f} s "
                    f"({exc.what}); stopping dbt before another worker takes over"
                ) from exc
            return
        if self.run_id in beat.lost:
            raise FencedError(f"run {self.run_id}: lease lost (epoch {self.epoch}); stopping dbt")
        if self.run_id in beat.cancel_requested and self.executor is not None:
            self.executor.cancel()


class Worker:
    """One worker slot: claim, execute, repeat, until ``stop()`` is true."""

    def __init__(
        self,
        app,
        *,
        worker_id: str | None = None,
        stop: Callable[[], bool] = lambda: False,
        before_claim: Callable[[], object] | None = None,
        info: Callable[[], dict | None] | None = None,
    ):
        self.app = app
        self.before_claim = before_claim  # e.g. follow dockyard.yml (processes.run_worker_slot)
        self.id = worker_id or process_id("worker")
        self.host = socket.gethostname()
        self.stop = stop
        # what the heartbeat row's info says (the slot sets it: config_error, its stale bound)
        self.info: Callable[[], dict | None] = info or (lambda: None)

    @property
    def server(self):
        return self.app.config.server  # follows a reload

    def limits(self) -> dict:
        envs = {
            name: e.max_concurrent_runs for name, e in self.app.config.environments.items() if e.max_concurrent_runs
        }
        overlap = {
            i
            for name, i in self.app.job_ids().items()
            if any(j.name == name and j.allow_overlap for j in self.app.config.jobs)
        }
        return {"global_limit": self.server.max_concurrent_runs, "env_limits": envs, "overlap_jobs": overlap}

    def run_once(self) -> int | None:
        """Claim one run and execute it; returns its id, or None when the queue was empty."""
        if self.before_claim is not None:
            self.before_claim()
        claim = self.app.store.queue.claim(self.id, self.host, **self.limits())
        if claim is None:
            return None
        crash_point("run_claimed")
        self.execute(claim)
        return claim.run_id

    def execute(self, claim) -> None:
        store, server = self.app.store, self.server
        recorder = LeasedRecorder(
            store,
            claim.run_id,
            claim.epoch,
            list(claim.commands),
            worker_id=self.id,
            heartbeat_s=server.heartbeat_seconds,
            lost_after_s=server.lost_after_seconds,
            stopping=self.stop,
            grace_s=server.shutdown_grace_seconds,
        )

        def on_start(run_id, executor):
            recorder.executor = executor
            crash_point("run_started")

        try:
            run = self.app.execute(
                claim.run_id,
                epoch=claim.epoch,
                recorder=recorder,
                on_start=on_start,
                keep_open=lambda: recorder.requeue,
            )
        except FencedError as exc:
            log.warning("%s", exc.what)
            return
        except SetupError as exc:  # recorded on the run: error, setup_failed, the reason in its log
            log.error("run %s could not start: %s", claim.run_id, exc.render())
            run = persist(
                lambda: store.runs.get_run(claim.run_id), timeout=server.lost_after_seconds, what=f"run {claim.run_id}"
            )
        except Exception:
            log.exception("run %s failed inside dockyard", claim.run_id)
            return
        if recorder.requeue:
            if store.leases.requeue(claim.run_id, claim.epoch):
                log.info("run %s requeued for another worker", claim.run_id)
            return
        crash_point("run_finished")
        if run.status == RunStatus.ERROR:
            persist(
                lambda: self.app.runs.maybe_retry(run.id),
                timeout=server.lost_after_seconds,
                what=f"retry of run {run.id}",
            )

    def run_forever(self) -> None:
        def register():
            store = self.app.store
            store.leases.register_process(self.id, "worker", self.host, os.getpid(), concurrency=1)
            return store

        try:
            store = persist_until(register, self.stop, what="worker start")
        except StoreError:
            return  # stopped before the store came back
        last_beat = 0.0
        try:
            while not self.stop():
                if time.monotonic() - last_beat >= self.server.heartbeat_seconds:
                    _quietly(lambda: store.leases.heartbeat_process(self.id, info=self.info()))
                    last_beat = time.monotonic()
                try:
                    ran = self.run_once()
                except StoreError as exc:
                    log.warning("store unreachable: %s", exc.what)
                    ran = None
                    time.sleep(1)
                if ran is None:
                    time.sleep(self.server.poll_seconds)
                else:
                    last_beat = 0.0
        finally:
            _quietly(lambda: store.leases.stop_process(self.id))


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except StoreError as exc:
        log.warning("store unreachable: %s", exc.what)


__all__ = ["LeasedRecorder", "Worker", "process_id", "clock"]
