"""``dockyard serve``: the HTTP API in this process, the scheduler and the workers as child
processes it restarts when they die (with backoff, and when their heartbeat goes stale), and
a graceful stop on SIGTERM (runs finish within ``server.shutdown_grace_seconds`` or are
cancelled and requeued)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from dockyard.environ import seal_process
from dockyard.errors import DockyardError
from dockyard.runner.process import signal_pid
from dockyard.server.fallback import keep_fallback
from dockyard.server.watchdog import Backoff, Watchdog, started_now

log = logging.getLogger("dockyard.server.serve")


API_SHUTDOWN_S = 5  # seconds the API gives requests in flight when the server stops


def serve(
    config_path: str | None,
    store_url: str | None,
    *,
    host: str,
    port: int,
    workers: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> int:
    """Scheduler + workers as child processes, and the HTTP API in this process."""
    import uvicorn

    from dockyard.app import App
    from dockyard.ui.site import create_site

    seal_process()  # before any thread; children get the environment explicitly
    app = App.open(config_path, store_url)
    app.store  # migrate before the children start  # noqa: B018
    keep_fallback(config_path, store_url, app)
    base = [sys.executable, "-m", "dockyard"]  # the store URL (a password?) never in argv: /proc/<pid>/cmdline
    config = ["--config", str(app.loaded.path)]
    specs = {"scheduler": [*base, "scheduler", *config]}
    if workers:
        specs["worker"] = [*base, "worker", *config, "--concurrency", str(workers)]
    env = {**os.environ, "DOCKYARD_SUPERVISOR_PID": str(os.getpid())}
    env.update({"DOCKYARD_STORE_URL": store_url} if store_url else {})  # children zero their env block
    children = {name: subprocess.Popen(cmd, env=env) for name, cmd in specs.items()}

    class Server(uvicorn.Server):
        # uvicorn re-raises SIGTERM after its own shutdown, which would kill this process
        # before it stops its children: handle the signals here instead.
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    api = create_site(app)  # the API and the web UI's pages (docs/ui.md)
    server = Server(
        uvicorn.Config(
            api,
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            # requests in flight get this long to finish on SIGTERM; without a bound, a client that
            # keeps an idle TLS connection open held the shutdown for asyncio's 30 s SSL
            # shutdown timeout before the children were even told to stop
            timeout_graceful_shutdown=API_SHUTDOWN_S,
        )
    )

    def shutdown(signum, frame) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    backoff, watchdog = Backoff(), Watchdog(app.store.leases.list_processes, what="scheduler")
    started = {name: started_now() for name in children}
    due: dict[str, float] = {}  # child -> when to start it again (after an exit, with backoff)

    def watch_once() -> None:
        for name, proc in list(children.items()):
            if name in due:
                if time.monotonic() >= due[name] and not server.should_exit:
                    del due[name]
                    children[name], started[name] = subprocess.Popen(specs[name], env=env), started_now()
            elif proc.poll() is not None and not server.should_exit:
                delay = backoff.delay(name)
                log.warning(
                    "%s exited with %s; restarting it in %g s (restart %d)",
                    name,
                    proc.returncode,
                    delay,
                    backoff.count(name),
                )
                due[name] = time.monotonic() + delay
        # the scheduler heartbeats for its own pid (the worker's slots are watched by the worker)
        watchdog.check({p.pid: started[n] for n, p in children.items() if n not in due and p.poll() is None})
        app.refresh()  # the API's config: reloaded (and its error known) without requests

    def watch() -> None:
        while not server.should_exit:
            try:
                watch_once()
            except DockyardError as exc:
                log.warning("supervisor: %s", exc.what)
            except Exception:  # noqa: BLE001 - the watch must go on
                log.exception("supervisor: unexpected error while watching the children")
            time.sleep(1)

    threading.Thread(target=watch, daemon=True).start()
    try:
        server.run()
    finally:
        server.should_exit = True
        grace = app.config.server.shutdown_grace_seconds + 15
        for proc in children.values():
            if proc.poll() is None:
                signal_pid(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0
