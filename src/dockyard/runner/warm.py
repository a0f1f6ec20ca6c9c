"""Warm runs: a manifest parsed once per project state, kept in a warm parent process per
environment, from which every step's dbt child is forked.

A worker slot (dbt imported, its serialisers warm) forks one **warm parent** per environment
(:class:`WarmParent`), the first time a step of that environment runs there. The worker
sends it each step (its argv, project folder, environment and file view, with the step's
two pipes attached, ``SCM_RIGHTS``); the parent computes the step's
:class:`~dockyard.runner.parse_key.ParseKey` and

* when it matches the key of the manifest it holds, forks the step's child straight away:
  the child runs ``dbtRunner(manifest=<that manifest>)``, with no parse at all;
* otherwise it parses first, in its own process, with the step's parse flags
  (:func:`dockyard.runner.fork.parse_argv`) and the run's target folder, so dbt's partial
  parsing does its usual work (a changed file re-parses that file) and the run gets the
  ``partial_parse.msgpack`` and ``manifest.json`` a plain command writes; the new manifest
  serves the next steps. Its output goes into the step's log, after a ``[dockyard] warm:``
  line saying why it parsed.

The child is the one of fork mode (:func:`dockyard.runner.fork.fork_child`, its own process
group, environment, files and file view), forked from the warm parent instead of the
worker: a step that crashes, leaks or changes dbt's global state ends with its child, and
the parent's manifest is never written to (the child has a copy-on-write copy). The parent
reaps the child, ends what is left of its process group and sends its exit code back.

On a warm hit the parent first copies the ``manifest.json`` and ``semantic_manifest.json``
of its last parse into the run's target folder (a plain command writes them while it
parses; commands such as ``run-operation`` write no other), and the child stamps the
manifest's ``invocation_id``, ``generated_at`` and ``env`` with its own. What a step may not
do warm (:func:`not_warm`) runs the usual fork-mode way, with the reason in its log.

:class:`WarmPool` keeps one parent per environment in a worker slot and evicts a parent idle
for ``idle_seconds`` or grown past ``max_memory_mb`` (its resident memory, checked before
and after each step). See docs/warm-runs.md.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import logging
import os
import select
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from dockyard.dbt.command import writes_project

log = logging.getLogger(__name__)

MAX_MESSAGE = 4 << 20
# commands that must parse for themselves: parse (its output is the parse), retry (re-runs
# the previous invocation's arguments), and those without a manifest
PARSES_ITSELF = frozenset({"parse", "retry", "debug", "deps", "clean", "init"})
PARSE_ARTIFACTS = ("manifest.json", "semantic_manifest.json")


def not_warm(argv: Sequence[str], *, prelude: bool, project_dir: str) -> str | None:
    """Why the step ``dbt <argv>`` cannot start from a warm manifest (None: it can)."""
    if not argv:
        return "no dbt command"
    if argv[0] in PARSES_ITSELF or writes_project(argv):
        return f"dbt {argv[0]} parses for itself"
    if "--no-partial-parse" in argv:
        return "the step asks for a full parse (--no-partial-parse)"
    if prelude:
        return "a pull-request build checks its selection in a parse of its own"
    if os.path.exists(os.path.join(project_dir, "catalogs.yml")):
        return "catalogs.yml: dbt applies catalog integrations only while it parses"
    return None


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (None when unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _send(sock: socket.socket, payload: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(payload).encode("utf-8")
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def _recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One message and the fds attached (``None``: the other end is gone)."""
    fds = array.array("i")
    try:
        data, ancdata, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(4 * fds.itemsize))
    except (ConnectionResetError, OSError):
        return None, []
    for level, kind, cdata in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


class WarmParent:
    """The worker's handle on one environment's warm parent process."""

    def __init__(self, name: str):
        self.name = name
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.last_used = time.monotonic()
        self.busy = False

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the warm parent: never returns
            ours.close()
            _serve(theirs, self.name)
        gc.unfreeze()
        theirs.close()
        self.pid, self.sock = pid, ours

    @property
    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return done == 0

    def send(self, request: dict, fds: Sequence[int]) -> bool:
        """Send a step (its two pipes attached); False when the parent is gone."""
        assert self.sock is not None
        self.last_used = time.monotonic()
        try:
            _send(self.sock, {"op": "step", **request}, fds)
        except OSError as exc:
            log.warning("warm parent of %s: %s", self.name, exc)
            self.stop()
            return False
        self.busy = True
        return True

    def answer(self, timeout: float) -> dict | None:
        """The parent's answer to the step sent, once it has one (None: not yet; it may be
        parsing): ``{"pid", "parsed", "why"}`` (the child runs) or ``{"fallback": reason}``."""
        if self.sock is None:
            return {"fallback": "the warm parent ended"}
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        answer, _ = _recv(self.sock)
        if answer is None:
            self.stop()
            return {"fallback": "the warm parent ended"}
        self.busy = "pid" in answer
        return answer

    def exit_code(self) -> int | None:
        """The running child's exit code once the parent has reaped it (None: not yet; -1: the
        parent died)."""
        assert self.sock is not None
        ready, _, _ = select.select([self.sock], [], [], 0)
        if not ready:
            return None
        answer, _ = _recv(self.sock)
        self.busy = False
        self.last_used = time.monotonic()
        if answer is None:
            self.stop()
            return -1
        return int(answer.get("exit", -1))

    def memory_mb(self) -> float | None:
        return rss_mb(self.pid) if self.pid else None

    def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                _send(self.sock, {"op": "stop"})
            self.sock.close()
            self.sock = None
        if self.pid is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.02)
            else:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, 0)
            self.pid = None


class WarmPool:
    """One :class:`WarmParent` per environment in this process, evicted when idle for
    ``idle_seconds`` or past ``max_memory_mb``."""

    def __init__(self, idle_seconds: float = 900.0, max_memory_mb: float = 4096.0):
        self.idle_seconds, self.max_memory_mb = idle_seconds, max_memory_mb
        self.parents: dict[str, WarmParent] = {}
        self.evicted: list[tuple[str, str]] = []  # (environment, why), for the log and the tests

    def get(self, name: str) -> WarmParent:
        self.sweep()
        parent = self.parents.get(name)
        if parent is not None and not parent.alive:
            parent.stop()
            parent = None
        if parent is None:
            parent = self.parents[name] = WarmParent(name)
            parent.start()
        return parent

    def sweep(self) -> None:
        """Evict the parents idle too long or too big (never one whose child runs)."""
        now = time.monotonic()
        for name, parent in list(self.parents.items()):
            if parent.busy:
                continue
            why = None
            memory = parent.memory_mb()
            if not parent.alive:
                why = "ended"
            elif now - parent.last_used > self.idle_seconds:
                why = f"idle for {now - parent.last_used:.0f} s"
            elif memory is not None and memory > self.max_memory_mb:
                why = f"{memory:.0f} MiB resident, over runner.warm_max_memory_mb ({self.max_memory_mb:g})"
            if why:
                log.info("warm parent of %s evicted: %s", name, why)
                self.evicted.append((name, why))
                parent.stop()
                del self.parents[name]

    def close(self) -> None:
        for parent in self.parents.values():
            parent.stop()
        self.parents.clear()


# -- the warm parent process -------------------------------------------------------


def _serve(sock: socket.socket, name: str) -> None:
    """The warm parent's loop. Never returns."""
    code = 0
    try:
        from dockyard import environ
        from dockyard.runner.fork import _tracker_fds
        from dockyard.runner.parse_key import KeyMaker

        gc.freeze()  # the worker's objects (its database connections) are never finalised here
        os.setpgid(0, 0)  # the worker's process-group signals are not for us
        with contextlib.suppress(OSError, AttributeError):  # the worker's death ends us
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        logging.root.handlers[:] = []
        environ.drop_inherited_fds(keep={0, 1, 2, sock.fileno(), *_tracker_fds()})
        state = _State(KeyMaker())
        while True:
            request, fds = _recv(sock)
            if request is None or request.get("op") != "step":
                for fd in fds:
                    os.close(fd)
                break
            try:
                state.step(sock, request, fds)
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
    except BaseException:  # noqa: BLE001 - the worker falls back; say why on our stderr
        code = 1
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):  # unlink the semaphores our parses made
            mp_util = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                mp_util._run_finalizers(0)
                mp_util._run_finalizers()
        os._exit(code)


class _State:
    def __init__(self, keys: Any):
        self.keys = keys
        self.key: Any = None
        self.manifest: Any = None
        self.reads: set[str] = set()
        self.saved: dict[str, str] = {}  # parse artifact name -> its copy in the cache folder

    def step(self, sock: socket.socket, req: dict, fds: list[int]) -> None:
        from dockyard.runner.fork import option

        out_w, ev_w = fds
        args, project_dir, env = req["args"], req["project_dir"], req["env"]
        target = option(args, "--target-path") or os.path.join(project_dir, "target")
        try:
            key = self.keys.key(args, project_dir, env, skip=req.get("skip", ()), reads=self.reads)
        except Exception as exc:  # noqa: BLE001 - an unreadable project folder: the usual path says more
            _send(sock, {"fallback": f"the project's files could not be read ({exc})"})
            return
        parsed, why = False, []
        if self.key is None or key.digest != self.key.digest:
            why = key.changes(self.key)
            self.manifest = self.key = None
            _note(out_w, "warm: parsing (" + ", ".join(why) + ")")
            code, manifest = _parse(args, project_dir, env, out_w)
            if manifest is None:
                _send(sock, {"fallback": f"the parse in the warm parent failed (exit code {code})"})
                return
            self.manifest, parsed = manifest, True
            self.reads = {n for n in getattr(manifest, "env_vars", {}) or {}}
            self.key = self.keys.key(args, project_dir, env, skip=req.get("skip", ()), reads=self.reads)
            self._save(target, req.get("cache_dir"))
        else:
            self._restore(target)
        pid = self._fork(req, out_w, ev_w)
        _send(sock, {"pid": pid, "parsed": parsed, "why": why})
        for fd in fds:
            os.close(fd)
        fds.clear()
        _send(sock, {"exit": _reap(pid)})

    def _save(self, target: str, cache_dir: str | None) -> None:
        self.saved = {}
        if not cache_dir:
            return
        with contextlib.suppress(OSError):
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            for name in PARSE_ARTIFACTS:
                src = os.path.join(target, name)
                if os.path.exists(src):
                    dest = os.path.join(cache_dir, f"warm-{name}")
                    shutil.copyfile(src, dest + ".tmp")
                    os.replace(dest + ".tmp", dest)
                    self.saved[name] = dest

    def _restore(self, target: str) -> None:
        for name, path in self.saved.items():
            with contextlib.suppress(OSError):
                shutil.copyfile(path, os.path.join(target, name))

    def _fork(self, req: dict, out_w: int, ev_w: int) -> int:
        from dockyard.runner.fork import fork_child
        from dockyard.runner.isolation import FileView

        view = FileView(tuple(req.get("hide", ())), tuple(req.get("reveal", ())))
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            fork_child(
                list(req["args"]),
                req["project_dir"],
                req["env"],
                frozenset(req.get("forward", ())),
                view,
                out_r=-1,
                out_w=out_w,
                ev_r=-1,
                ev_w=ev_w,
                parent_pid=os.getppid(),
                manifest=self.manifest,
            )
        gc.unfreeze()
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        return pid


def _note(fd: int, text: str) -> None:
    line = f"{time.strftime('%H:%M:%S', time.gmtime())}  [dockyard] {text}\n"
    with contextlib.suppress(OSError):
        os.write(fd, line.encode("utf-8", "replace"))


def _parse(args, project_dir: str, env: dict, out_w: int) -> tuple[int, Any]:
    """``dbt parse`` with the step's parse flags, here, its output into the step's pipes;
    (exit code, manifest or None)."""
    from dockyard import environ
    from dockyard.permissions import dbt_umask
    from dockyard.runner.fork import _exit_code, parse_argv

    saved = os.dup(1), os.dup(2)
    keep = sys.stdout, sys.stderr
    old_umask = os.umask(dbt_umask(args))
    try:
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
        os.chdir(project_dir)
        environ.enter_step(env)
        with contextlib.suppress(Exception):
            from dbt_common.events.functions import reset_metadata_vars

            reset_metadata_vars()
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke(parse_argv(args))
        code = _exit_code(result)
        return code, (result.result if result.success else None)
    except Exception:  # noqa: BLE001 - the usual path will say what went wrong
        import traceback

        traceback.print_exc()
        return 2, None
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = keep
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.umask(old_umask)


def _reap(pid: int) -> int:
    """Wait for the child, end what is left of its process group, reap it: its exit code."""
    from dockyard.runner.process import end_group

    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        return -1
    end_group(pid)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
