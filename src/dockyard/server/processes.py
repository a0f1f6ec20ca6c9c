"""Long-running processes: the scheduler loop and the worker's slots (``dockyard serve``,
which supervises both, is :mod:`dockyard.server.serve`).

Every process writes a heartbeat row (``dockyard status`` shows them). Worker slots are
forked before anything else happens in a worker process (no threads, no connections),
then each imports dbt once and forks dbt per step; the worker's parent restarts a slot that
dies or whose heartbeat goes stale, and a slot stops by itself when the parent dies.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time

from dockyard import clock
from dockyard.config.reload import Reloader
from dockyard.environ import seal_process
from dockyard.errors import DockyardError, StoreError
from dockyard.runner.process import signal_pid
from dockyard.server.fallback import keep_fallback, open_app
from dockyard.server.watchdog import Backoff, Watchdog, beat_info, started_now, store_rows
from dockyard.store.persist import persist_until

log = logging.getLogger("dockyard.server.processes")
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Stop:
    """A flag set by SIGTERM/SIGINT (async-signal-safe)."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._set)

    def _set(self, signum, frame) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def follow_supervisor() -> None:
    """A child of ``dockyard serve`` stops (SIGINT) when serve dies, even by SIGKILL."""
    parent = os.environ.get("DOCKYARD_SUPERVISOR_PID")
    if parent:
        from dockyard.runner.process import lifeline

        lifeline(int(parent))


def run_scheduler(app, stop: Stop | None = None) -> None:
    from dockyard.server.scheduler import Scheduler
    from dockyard.server.worker import process_id

    stop = stop or Stop()
    seal_process()  # dbt steps must not read this process's environment (dockyard.environ)
    follow_supervisor()
    holder = process_id("scheduler")

    def register():
        app.store.leases.register_process(holder, "scheduler", socket.gethostname(), os.getpid())
        app.sync()
        return app.store

    try:
        store = persist_until(register, stop, what="scheduler start")
    except StoreError:
        return  # stopped before the store came back
    scheduler = Scheduler(app, holder)
    reloader = Reloader(app)
    last_beat = 0.0
    try:
        while not stop():
            try:
                if app.config.server.reload and reloader.check():
                    app.sync()
                if time.monotonic() - last_beat >= app.config.server.heartbeat_seconds:
                    store.leases.heartbeat_process(holder, info=beat_info(app.config.server, reloader.error))
                    last_beat = time.monotonic()
                scheduler.tick()
            except StoreError as exc:
                log.warning("store unreachable: %s", exc.what)
            _sleep_until(time.time() + _seconds_to_next_fire(app), stop)
    finally:
        scheduler.close()  # stops the event dispatch, gives the sinks' cursors up
        try:
            store.leases.release_lease("scheduler", holder)
            store.leases.stop_process(holder)
        except StoreError:
            pass


def run_worker_slot(config_path: str | None, store_url: str | None, stop: Stop) -> None:
    from dockyard.runner.fork import preload_dbt, warm_dbt
    from dockyard.runner.warm import WarmPool
    from dockyard.server.worker import Worker

    seal_process()
    app = open_app(config_path, store_url)
    # import dbt and the project's adapters once, warm its serialisers: every run's steps are
    # forked from here
    try:
        outputs = app.project.profile().get("outputs", {}).values()
    except DockyardError:  # reported when a run needs the profile
        outputs = []
    preload_dbt(adapters=sorted({str(o["type"]) for o in outputs if isinstance(o, dict) and o.get("type")}))
    warm_dbt()
    runner = app.config.runner
    pool = WarmPool(runner.warm_idle_seconds, runner.warm_max_memory_mb)
    app.execution.warm_pool = pool
    reloader = Reloader(app)

    def follow_config() -> None:
        if app.config.server.reload:
            reloader.check()
        pool.idle_seconds = app.config.runner.warm_idle_seconds
        pool.max_memory_mb = app.config.runner.warm_max_memory_mb
        pool.sweep()  # between runs: evict the idle and the oversized

    worker = Worker(
        app, stop=stop, before_claim=follow_config, info=lambda: beat_info(app.config.server, reloader.error)
    )
    try:
        worker.run_forever()
    finally:
        pool.close()


def run_worker(config_path: str | None, store_url: str | None, concurrency: int) -> int:
    """Fork ``concurrency`` worker slots and keep them alive until SIGTERM."""
    slots: dict[int, int] = {}
    started: dict[int, object] = {}  # pid -> when it was forked (clock.now())
    due: dict[int, float] = {}  # slot -> when to start it again (after an exit, with backoff)
    backoff = Backoff()
    watchdog = Watchdog(store_rows(lambda: _store_url(config_path, store_url)), what="worker slot")
    last_watch = time.monotonic() + 4  # no slot can be stale before it has registered
    seal_process()  # before the slots fork: they inherit the cleared block
    stop = Stop()
    follow_supervisor()
    keep_fallback(config_path, store_url)  # (after Stop: it loads the config)
    parent = os.getpid()

    def spawn(slot: int) -> None:
        # SIGTERM/SIGINT stay blocked across fork(): CPython drops signals that reach a child
        # before its after-fork clean-up, so the parent stopping a slot right after forking it
        # would go unheard. Blocked, they wait until the child has unblocked them below; the
        # child keeps the inherited stop flag and handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        else:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                # A slot stops (gracefully: SIGINT sets its stop flag) when this process dies,
                # even by SIGKILL, instead of working on unsupervised.
                from dockyard.runner.process import lifeline

                lifeline(parent)
                run_worker_slot(config_path, store_url, stop)
            except BaseException:  # noqa: BLE001 - a slot must never return into the parent's loop
                log.exception("worker slot %s crashed", slot)
                code = 1
            finally:
                os._exit(code)
        slots[pid] = slot
        started[pid] = started_now()

    for slot in range(concurrency):
        if not stop():
            spawn(slot)
    while slots or (due and not stop()):  # (every slot may be waiting for its restart)
        try:
            pid, status = os.waitpid(-1, os.WNOHANG) if slots else (0, 0)
        except ChildProcessError:
            break
        if pid == 0:
            if stop():
                _stop_children(slots)
                break
            for slot, when in list(due.items()):
                if time.monotonic() >= when:
                    del due[slot]
                    spawn(slot)
            if time.monotonic() - last_watch >= 1.0:
                watchdog.check({p: started[p] for p in slots})
                last_watch = time.monotonic()
            time.sleep(0.2)
            continue
        slot = slots.pop(pid, None)
        started.pop(pid, None)
        if slot is not None and not stop():
            delay = backoff.delay(slot)
            log.warning(
                "worker slot %s exited (status %s); restarting it in %g s (restart %d)",
                slot,
                status,
                delay,
                backoff.count(slot),
            )
            due[slot] = time.monotonic() + delay
    return 0


def _store_url(config_path: str | None, store_url: str | None) -> str:
    from dockyard.app import App

    return App.open(config_path, store_url).store_url


def _stop_children(slots: dict[int, int], resend_s: float = 2.0) -> None:
    """SIGTERM every slot and reap them all, repeating the signal every ``resend_s`` seconds
    for a slot that has not stopped yet."""
    sent = 0.0
    while slots:
        if time.monotonic() - sent >= resend_s:
            for child in list(slots):
                signal_pid(child, signal.SIGTERM)
            sent = time.monotonic()
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            slots.pop(pid, None)
        else:
            time.sleep(0.05)


def _sleep_until(when: float, stop) -> None:
    while not stop():
        left = when - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def _seconds_to_next_fire(app) -> float:
    """Real seconds until just after the next cron fire, at most one second."""
    from dockyard.schedule import safe_next_fires

    now = clock.now()
    wait = 1.0
    seen: set[tuple] = set()
    for job in app.config.jobs:
        schedule = (job.cron, job.schedule.timezone if job.schedule else "UTC")
        if schedule in seen:  # once per distinct schedule: 1,000 jobs often share a few
            continue
        seen.add(schedule)
        for nxt in safe_next_fires(*schedule, now, 1, job=job.name):
            wait = min(wait, (nxt - now).total_seconds() * clock.sleep_scale() + 0.005)
    return max(wait, 0.0)
