"""One dbt invocation in a process of its own.

:class:`DbtInvocation` runs ``dbt <args>`` with an explicit environment, ``cwd`` = the
project folder, never through a shell, in a new process group (so a signal reaches dbt and
anything it started), and hands back its output without threads: the caller drives
:meth:`DbtInvocation.poll` (a :mod:`selectors` loop over the process's pipes).

Two modes, one interface:

``fork``
    The current process imports ``dbt.cli.main`` once (lazily, then cached: importing dbt
    costs seconds) and ``os.fork()`` s a child per invocation. The child runs
    ``dbtRunner(callbacks=[cb]).invoke(args)``: dbt's normal text console output goes to a
    pipe (the step log), and ``cb`` forwards only the node events
    (:data:`~dockyard.dbt.events.NODE_EVENTS`, filtered by ``msg.info.name`` before any
    conversion) as JSON lines over a second pipe. The child ends with ``os._exit`` and
    dbt's CLI exit codes (0 success, 1 failed result, 2 error).

    **Constraint**: fork without exec is only safe while the parent is single-threaded (a
    lock held by another thread at fork time stays locked forever in the child). Start
    fork-mode invocations from a single-threaded process such as dockyard's worker loop;
    use ``mode="subprocess"`` in a multi-threaded host (a web server, say).

``subprocess``
    ``python -P -c <bootstrap> <args> --log-format json``: a fresh interpreter running
    dbt's CLI entry point. Each stdout line is a JSON event; its human text is
    ``info.msg`` and is rebuilt into exactly the line dbt's text format prints
    (``HH:MM:SS  msg``). A line that is not JSON passes through as raw log text.
    (The brief's ``-m dbt.cli.main`` makes runpy warn on stderr that ``dbt.cli.main`` was
    imported twice; the bootstrap calls the same ``cli`` entry point without that, and
    ``-P`` keeps the project folder off ``sys.path``.)

Either way the log is dbt's plain human-readable console text with ANSI colours removed.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard.dbt.events import NODE_EVENTS
from dockyard.errors import DbtInvocationError
from dockyard.permissions import dbt_umask
from dockyard.runner.fork import VIEW_WARNING, ensure_resource_tracker, fork_child, preload_dbt, warm_dbt
from dockyard.runner.isolation import FileView, enter_view
from dockyard.runner.output import COMPILED_PATHS_EVENT, DbtEvent, LogLine, clean_line, human_line, strip_ansi
from dockyard.runner.process import end_group, group_members, lifeline

__all__ = [
    "COMPILED_PATHS_EVENT",
    "DbtEvent",
    "DbtInvocation",
    "LogLine",
    "group_members",
    "human_line",
    "preload_dbt",
    "strip_ansi",
    "warm_dbt",
]

log = logging.getLogger(__name__)

MODES = ("fork", "subprocess")
# How long to keep reading pipes after the process group is gone (a descendant that left
# the group could hold them open forever).
DRAIN_AFTER_EXIT_S = 2.0
MAX_LINE_BYTES = 1 << 20
# How long what is left of dbt's process group may take to end after dbt itself exited.
GROUP_EXIT_GRACE_S = 1.0

_SUBPROCESS_BOOTSTRAP = (
    "import signal, sys\n"
    # a parent that ignores SIGINT (nohup, a background job) would pass SIG_IGN on
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    + inspect.getsource(lifeline)
    + "lifeline(int(sys.argv.pop(1)))\n"
    "import json\n" + inspect.getsource(enter_view) + "_why = enter_view(**json.loads(sys.argv.pop(1)))\n"
    f"if _why: print({VIEW_WARNING!r} % _why, file=sys.stderr)\n"
    "from dbt.cli.main import cli\n"
    "cli(prog_name='dbt')\n"
)

_warned_threads = False


class _Stream:
    __slots__ = ("fd", "kind", "name", "buf", "open")

    def __init__(self, fd: int, kind: str, name: str):
        self.fd = fd
        self.kind = kind  # "text" | "json" | "events"
        self.name = name  # "stdout" | "stderr" | "events"
        self.buf = bytearray()
        self.open = True


class DbtInvocation:
    """``dbt <args>`` in its own process group; see the module docstring.

    ``args`` are the arguments after ``dbt``; ``env`` is the complete environment dbt sees;
    ``forward`` the event names to hand back as :class:`DbtEvent` (default: node events).
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        project_dir: str | os.PathLike,
        env: Mapping[str, str],
        mode: str = "fork",
        forward: Collection[str] = NODE_EVENTS,
        python: str | None = None,
        preload: bool = True,
        view: FileView | None = None,
        prelude: Callable[[Path], Any] | None = None,
        warm: Any = None,
        warm_request: Mapping[str, Any] | None = None,
        tick: Callable[[], None] | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if prelude is not None and mode != "fork":
            raise ValueError("a prelude runs in a forked dbt child: fork mode only")
        self.args = [str(a) for a in args]
        self.project_dir = str(Path(project_dir))
        self.env = {str(k): str(v) for k, v in env.items()}
        self.mode = mode
        self.forward = frozenset(forward)
        self.python = python or sys.executable
        # fork mode: import dbt in this process once and fork it warm (fast steps, but this
        # process keeps dbt's ~90 MB, which every child then shares copy-on-write), or fork
        # a lean child that imports dbt itself (as small as raw dbt, as slow to start)
        self.preload = preload
        self.view = view or FileView()  # what of dockyard's files dbt must not see
        self.prelude = prelude  # fork mode: parse, prelude(target folder), then args (dockyard.runner.fork)
        # fork mode: a warm parent (dockyard.runner.warm.WarmParent) to fork the step from,
        # with what more its request carries (the folders the key skips, its cache folder)
        self.warm = warm if mode == "fork" and prelude is None else None
        self.warm_request = dict(warm_request or {})
        self.warm_answer: dict | None = None  # what the warm parent said (parsed, why, fallback)
        self.tick = tick  # called while the warm parent parses (a worker renews its lease)
        self.pid: int | None = None
        self.returncode: int | None = None
        self.started_at: float | None = None
        self._popen: subprocess.Popen | None = None
        self._sel: selectors.BaseSelector | None = None
        self._streams: dict[int, _Stream] = {}
        self._pending: list[DbtEvent | LogLine] = []
        self._exited_at: float | None = None  # monotonic time the leader was seen exited
        self._reaped = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self.pid is not None:
            raise DbtInvocationError("this dbt invocation was already started")
        if not os.path.isdir(self.project_dir):
            raise DbtInvocationError(f"the dbt project folder {self.project_dir} does not exist")
        self._sel = selectors.DefaultSelector()
        if self.mode == "fork":
            if self.warm is None or not self._start_warm():
                self.warm = None
                self._start_fork()
        else:
            self._start_subprocess()
        self.started_at = time.monotonic()

    def _add_stream(self, fd: int, kind: str, name: str) -> None:
        os.set_blocking(fd, False)
        self._streams[fd] = _Stream(fd, kind, name)
        assert self._sel is not None
        self._sel.register(fd, selectors.EVENT_READ)

    def _start_subprocess(self) -> None:
        argv = [
            self.python,
            "-P",
            "-c",
            _SUBPROCESS_BOOTSTRAP,
            str(os.getpid()),
            self.view.to_json(),
            *self.args,
            "--log-format",
            "json",
        ]
        try:
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.project_dir,
                env=self.env,
                start_new_session=True,
                close_fds=True,
                bufsize=0,
                umask=dbt_umask(self.args),
            )
        except OSError as exc:
            raise DbtInvocationError(f"cannot start dbt: {exc}") from exc
        self.pid = self._popen.pid
        assert self._popen.stdout is not None and self._popen.stderr is not None
        self._add_stream(self._popen.stdout.fileno(), "json", "stdout")
        self._add_stream(self._popen.stderr.fileno(), "text", "stderr")

    def _start_fork(self) -> None:
        global _warned_threads
        if self.preload:
            preload_dbt()
        else:
            ensure_resource_tracker()
        if threading.active_count() > 1 and not _warned_threads:
            _warned_threads = True
            log.warning(
                "forking dbt from a process with %d threads; fork mode expects a single-threaded parent",
                threading.active_count(),
            )
        out_r, out_w = os.pipe()
        ev_r, ev_w = os.pipe()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        parent_pid = os.getpid()
        # The child's garbage collector would walk (and so write to, copying) every page of
        # objects it inherits; frozen, they stay shared with this process (gc.freeze docs).
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            gc.unfreeze()
            for fd in (out_r, out_w, ev_r, ev_w):
                os.close(fd)
            raise DbtInvocationError(f"cannot fork dbt: {exc}") from exc
        if pid:
            gc.unfreeze()
        if pid == 0:  # child: never returns
            fork_child(
                self.args,
                self.project_dir,
                self.env,
                self.forward,
                self.view,
                out_r=out_r,
                out_w=out_w,
                ev_r=ev_r,
                ev_w=ev_w,
                parent_pid=parent_pid,
                prelude=self.prelude,
            )
        # parent
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done by the child: whoever runs first wins the race
        os.close(out_w)
        os.close(ev_w)
        self.pid = pid
        self._add_stream(out_r, "text", "stdout")  # stdout and stderr, interleaved as written
        self._add_stream(ev_r, "events", "events")

    def _start_warm(self) -> bool:
        """Have the warm parent fork the step (see :mod:`dockyard.runner.warm`); False when it
        cannot (its output so far and the reason are kept for the log). While the warm parent
        parses (a minute for a big project), its output is read into the log and ``tick`` is
        called (a worker renews its lease there)."""
        out_r, out_w = os.pipe()
        ev_r, ev_w = os.pipe()
        request = {
            "args": self.args,
            "project_dir": self.project_dir,
            "env": self.env,
            "forward": sorted(self.forward),
            "hide": list(self.view.hide),
            "reveal": list(self.view.reveal),
            **self.warm_request,
        }
        try:
            sent = self.warm.send(request, [out_w, ev_w])
        finally:
            os.close(out_w)
            os.close(ev_w)
        self._add_stream(out_r, "text", "stdout")
        self._add_stream(ev_r, "events", "events")
        answer: dict | None = None if sent else {"fallback": "the warm parent ended"}
        try:
            while answer is None:
                answer = self.warm.answer(0.25)
                assert self._sel is not None
                for key, _ in self._sel.select(0):  # the warm parent's parse, as it goes
                    self._read(self._streams[key.fd])
                if answer is None and self.tick is not None:
                    self.tick()
        except BaseException:
            self.warm.stop()  # abandoned mid-step (a lost lease): its state is unknown
            self._drop_streams()
            raise
        self.warm_answer = answer
        if "pid" not in answer:
            for stream in self._streams.values():  # the rest of what it wrote (a failed parse)
                if stream.open:
                    os.set_blocking(stream.fd, True)
                    self._read_all(stream)
            self._pending = [p for p in self._pending if isinstance(p, LogLine)]
            why = answer.get("fallback") or "the warm parent could not start the step"
            stamp = time.strftime("%H:%M:%S", time.gmtime())
            self._pending.append(LogLine(f"{stamp}  [dockyard] warm: {why}; the step parses as usual"))
            self._drop_streams()
            return False
        self.pid = int(answer["pid"])
        return True

    def _drop_streams(self) -> None:
        for stream in self._streams.values():
            if stream.open:
                self._release(stream)
        self._streams.clear()

    def _read_all(self, stream: _Stream) -> None:
        while True:
            try:
                chunk = os.read(stream.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            stream.buf += chunk
            self._split(stream)
        self._close_stream(stream)

    # -- output ----------------------------------------------------------------------

    def filenos(self) -> list[int]:
        """The pipes still open (for an outer selector, if the caller has one)."""
        return [fd for fd, s in self._streams.items() if s.open]

    @property
    def done(self) -> bool:
        """The process has exited, was reaped and all of its output was read."""
        return self._reaped and not any(s.open for s in self._streams.values())

    def poll(self, timeout: float = 0.0) -> list[DbtEvent | LogLine]:
        """Read what is available (waiting up to ``timeout`` s for something) and return it."""
        self._pump(timeout)
        out, self._pending = self._pending, []
        return out

    def _pump(self, timeout: float) -> None:
        if self.pid is None:
            raise DbtInvocationError("this dbt invocation was not started")
        open_fds = [fd for fd, s in self._streams.items() if s.open]
        if open_fds and self._sel is not None:
            ready = self._sel.select(timeout)
            for key, _ in ready:
                self._read(self._streams[key.fd])
        elif timeout > 0 and not self._reaped:
            time.sleep(min(timeout, 0.05))
        self._check_exit()
        if self._reaped and self._exited_at is not None and time.monotonic() - self._exited_at > DRAIN_AFTER_EXIT_S:
            for stream in self._streams.values():
                if stream.open:
                    self._close_stream(stream)

    def _read(self, stream: _Stream) -> None:
        while True:
            try:
                chunk = os.read(stream.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._close_stream(stream)
                return
            stream.buf += chunk
            self._split(stream)
            if len(chunk) < 65536:
                break

    def _split(self, stream: _Stream, final: bool = False) -> None:
        buf = stream.buf
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            self._emit(stream, bytes(buf[start:nl]))
            start = nl + 1
        del buf[:start]
        if buf and (final or len(buf) > MAX_LINE_BYTES):
            self._emit(stream, bytes(buf))
            buf.clear()

    def _emit(self, stream: _Stream, raw: bytes) -> None:
        if stream.kind == "events":
            try:
                payload = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                return
            if not isinstance(payload, dict) or not isinstance(payload.get("info") or {}, dict):
                return
            name = (payload.get("info") or {}).get("name", "")
            self._pending.append(DbtEvent(name, payload))
            return
        if stream.kind == "json" and raw[:1] == b"{":
            try:
                payload = json.loads(raw)
            except (ValueError, RecursionError):  # not dbt's JSON (a model printing): kept as text
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("info"), dict):
                text = human_line(payload)
                if text is not None:
                    for line in text.split("\n"):
                        self._pending.append(LogLine(line.rstrip("\r")))
                name = payload["info"].get("name", "")
                if name in self.forward:
                    self._pending.append(DbtEvent(name, payload))
                return
        self._pending.append(LogLine(clean_line(raw), stream.name))

    def _close_stream(self, stream: _Stream) -> None:
        if not stream.open:
            return
        self._split(stream, final=True)
        self._release(stream)

    def _release(self, stream: _Stream) -> None:
        """Stop watching a stream and close its fd (subprocess mode: the Popen file objects
        own the fds; closed in close())."""
        stream.open = False
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(stream.fd)
        if self._popen is None:
            with contextlib.suppress(OSError):
                os.close(stream.fd)

    # -- process state ---------------------------------------------------------------

    def _check_exit(self) -> None:
        """Notice the leader's exit, kill what is left of its group, then reap it."""
        if self._reaped or self.pid is None:
            return
        if self.warm is not None:  # the warm parent reaps the child and sends its exit code
            code = self.warm.exit_code()
            if code is not None:
                self.returncode, self._reaped, self._exited_at = code, True, time.monotonic()
            return
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # somebody else reaped it (a SIGCHLD handler, say)
            self._reaped = True
            if self.returncode is None:
                self.returncode = self._popen.returncode if self._popen is not None else None
            if self.returncode is None:
                self.returncode = -1
            self._exited_at = time.monotonic()
            return
        if info is None:
            return
        self._end_group()
        if self._popen is not None:
            self.returncode = self._popen.wait()
        else:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        self._reaped = True
        self._exited_at = time.monotonic()

    def _end_group(self) -> None:
        """The leader has exited: end the rest of its group (:func:`process.end_group`)."""
        assert self.pid is not None
        end_group(self.pid, GROUP_EXIT_GRACE_S)

    def _signal_group(self, sig: int) -> bool:
        if self.pid is None or self._reaped:
            return False
        try:
            os.killpg(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def interrupt(self) -> bool:
        """SIGINT to the process group (dbt cancels its queries and stops)."""
        return self._signal_group(signal.SIGINT)

    def terminate(self) -> bool:
        """SIGTERM to the process group."""
        return self._signal_group(signal.SIGTERM)

    def kill(self) -> bool:
        """SIGKILL to the process group."""
        return self._signal_group(signal.SIGKILL)

    @property
    def exited(self) -> bool:
        self._check_exit()
        return self._reaped

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the end of the process and its output (which stays readable by
        :meth:`poll`); returns the exit code, or ``None`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            remaining = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if remaining <= 0:
                return None
            self._pump(remaining)
        return self.returncode

    def close(self) -> None:
        """Kill the group if it still runs, reap it and release the pipes."""
        if self.pid is not None and not self._reaped:
            self._signal_group(signal.SIGKILL)
            deadline = time.monotonic() + 5
            while not self._reaped and time.monotonic() < deadline:
                self._check_exit()
                if not self._reaped:
                    time.sleep(0.01)
        for stream in self._streams.values():
            if stream.open:
                self._release(stream)
        if self._popen is not None:
            for f in (self._popen.stdout, self._popen.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None

    def __enter__(self) -> DbtInvocation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
