"""What a process's environment shows to others, and what a dbt step sees of it.

A dbt step must see its own environment's variables and secrets and nothing else of the
server's environment (which holds the sources of *every* environment's ``env:`` secrets).
``os.environ`` is only one channel: Linux also shows the environment a process was
``exec``'d with at ``/proc/<pid>/environ``, a block of the process's memory (between
``env_start`` and ``env_end``, fields 50 and 51 of ``/proc/<pid>/stat``) that neither
``os.environ`` nor ``putenv()`` ever change. A fork-mode dbt child inherits its worker's
block, so its ``/proc/self/environ`` showed the worker's whole environment; any step (also
in subprocess mode) could read its parent's ``/proc/<ppid>/environ`` and its
grandparent's.

:func:`seal_process` runs first thing in every long-lived dockyard process that starts
dbt children (foreground ``run``/``rerun``, ``serve``, the scheduler, the worker and its
slots). It rebuilds the C library's environment on the heap from ``os.environ`` (so
``getenv()`` in C code, ``subprocess`` without ``env=``, ``~`` expansion, locale and time
zone keep working), overwrites the original block with NUL bytes (checked by reading
``/proc/self/environ`` back) and marks the process non-dumpable (``PR_SET_DUMPABLE`` 0: no
core dumps, and processes of the same non-root user can no longer read its ``/proc``
files or attach to it). ``os.environ`` stays complete in that process: secrets are
resolved from it.

:func:`enter_step` runs in a fork-mode dbt child before dbt starts: ``os.environ`` and the
C environment become exactly the step's explicit environment, the inherited block is
zeroed if the parent did not do it, the process is dumpable again (the worker reads its
warehouse connections from ``/proc/<pid>/fd``, see :mod:`dockyard.runner.sessions`), and
every file descriptor the worker had open (its store connection, sockets, log files) is
pointed at ``/dev/null`` except the ones the child needs (:func:`drop_inherited_fds`).

Root can still read any process's memory; see docs/operations.md, "Secrets", for what is
left. On platforms other than Linux these functions do nothing (one log line).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Collection, Mapping

log = logging.getLogger("dockyard.environ")

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
# /proc/<pid>/stat fields (numbered from 1, see proc(5)): 48 arg_start, 50 env_start, 51 env_end
_ENV_START_FIELD = 50
_ARG_START_FIELD = 48

_libc: ctypes.CDLL | None = None
_warned_platform = False


def supported() -> bool:
    return sys.platform.startswith("linux")


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _skip(what: str) -> bool:
    global _warned_platform
    if supported():
        return False
    if not _warned_platform:
        _warned_platform = True
        log.info("%s: not on Linux (%s), the process environment is left as it is", what, sys.platform)
    return True


def block_bounds() -> tuple[int, int]:
    """Start and end address of this process's original environment block."""
    with open("/proc/self/stat", "rb") as fh:
        stat = fh.read()
    fields = stat[stat.rfind(b")") + 2 :].split()  # fields[0] is field 3 (state)
    return int(fields[_ENV_START_FIELD - 3]), int(fields[_ENV_START_FIELD - 2])


def visible_environ() -> bytes:
    """What others read at ``/proc/<our pid>/environ``."""
    with open("/proc/self/environ", "rb") as fh:
        return fh.read()


def _rebuild_c_environ(env: Mapping[bytes, bytes]) -> None:
    """Point the C library's ``environ`` at fresh heap copies of ``env`` (none into the
    block, which is about to be zeroed)."""
    if _c().clearenv() != 0:
        raise OSError(ctypes.get_errno(), "clearenv failed")
    for key, value in env.items():
        with contextlib.suppress(ValueError, OSError):  # a name Python accepted but putenv does not
            os.putenv(key, value)


def _zero_block() -> bool:
    """Overwrite the original environment block with NULs; True when nothing is left."""
    start, end = block_bounds()
    if end > start and visible_environ().strip(b"\0"):
        ctypes.memset(start, 0, end - start)
    return not visible_environ().strip(b"\0")


def hide_in_argv(value: str | None) -> bool:
    """Overwrite ``value`` (a password in ``--store-url``, say) with ``*`` wherever it is in
    this process's command line, which anyone on the machine reads at ``/proc/<pid>/cmdline``
    (``sys.argv`` is Python's own copy and keeps it). True when it is no longer there."""
    if not value or _skip("hide_in_argv"):
        return False
    raw = value.encode()
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        start = int(stat[stat.rfind(b")") + 2 :].split()[_ARG_START_FIELD - 3])
        with open("/proc/self/cmdline", "rb") as fh:
            shown = fh.read()
        at = shown.find(raw)
        while at >= 0:
            ctypes.memset(start + at, ord("*"), len(raw))
            at = shown.find(raw, at + len(raw))
        with open("/proc/self/cmdline", "rb") as fh:
            return raw not in fh.read()
    except (OSError, ValueError, IndexError) as exc:
        log.warning("could not hide a value in this process's command line (%s)", exc)
        return False


def set_dumpable(flag: bool) -> None:
    with contextlib.suppress(OSError, AttributeError):
        _c().prctl(PR_SET_DUMPABLE, 1 if flag else 0, 0, 0, 0)


def dumpable() -> bool:
    return bool(_c().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def seal_process() -> bool:
    """Zero this process's ``/proc/<pid>/environ`` and make it non-dumpable, keeping
    ``os.environ`` and the C environment intact. Call it before starting any thread (the C
    environment is rebuilt). Idempotent; True when the block is empty afterwards."""
    if _skip("seal_process"):
        return False
    set_dumpable(True)  # a non-dumpable process of a non-root user cannot read its own /proc files
    try:
        if visible_environ().strip(b"\0"):
            _rebuild_c_environ(dict(os.environb))
            ok = _zero_block()
        else:
            ok = True
    except (OSError, ValueError, IndexError) as exc:
        log.warning(
            "could not clear this process's environment block (%s): dbt steps may read /proc/%d/environ",
            exc,
            os.getpid(),
        )
        ok = False
    if not ok:
        log.warning("this process's environment block is still readable at /proc/%d/environ", os.getpid())
    set_dumpable(False)
    return ok


def enter_step(env: Mapping[str, str]) -> None:
    """In a fork-mode dbt child: make the step's explicit environment the only one there is."""
    os.environ.clear()
    if supported():
        _c().clearenv()
    os.environ.update(env)
    if _skip("enter_step"):
        return
    set_dumpable(True)  # first: a non-dumpable process of a non-root user cannot read its own /proc files
    if not _zero_block():
        raise OSError("the inherited environment block could not be cleared")


def drop_inherited_fds(keep: Collection[int]) -> list[int]:
    """Point every open file descriptor but ``keep`` at ``/dev/null`` (the numbers stay in
    use, so an inherited object that closes its fd later closes /dev/null, never a file dbt
    opened). Returns the fds replaced."""
    try:
        fds = sorted(int(name) for name in os.listdir("/proc/self/fd" if supported() else "/dev/fd"))
    except OSError:
        return []
    devnull = os.open(os.devnull, os.O_RDWR)
    replaced = []
    try:
        for fd in fds:
            if fd in keep or fd == devnull:
                continue
            try:
                os.dup2(devnull, fd, inheritable=False)
            except OSError:  # closed meanwhile (the listing's own fd)
                continue
            replaced.append(fd)
    finally:
        os.close(devnull)
    return replaced
