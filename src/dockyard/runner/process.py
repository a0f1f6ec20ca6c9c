"""Process plumbing shared by everything that starts dbt: the parent-death signal and the
members of a process group."""

from __future__ import annotations

import logging
import os
import signal
import time

log = logging.getLogger(__name__)


def lifeline(parent: int) -> None:
    """Ask the kernel for SIGINT when our parent dies (Linux ``PR_SET_PDEATHSIG``), so that a
    dockyard process killed with SIGKILL leaves no dbt behind; dbt treats SIGINT as Ctrl-C and
    cancels its warehouse queries. If the parent is already gone, interrupt ourselves.
    Runs in the dbt process (fork child, or subprocess bootstrap via its source)."""
    import ctypes
    import os
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGINT)


def group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) processes of process group ``pgid``; ``None`` without ``/proc``."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    if "self" not in entries:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                members.append(int(entry))
        except (IndexError, ValueError):
            continue
    return members


def signal_pid(pid: int, sig: int) -> None:
    """``os.kill`` that ignores a process already gone (or no longer ours)."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def end_group(pgid: int, grace: float = 1.0) -> None:
    """The leader ``pgid`` has exited (a zombie, not reaped yet): end the rest of its group.

    The unreaped leader pins the process group id, so signalling the group cannot hit an
    unrelated group that reused the id. What is left (e.g. the multiprocessing resource
    tracker dbt starts, which cleans up dbt's semaphores when dbt is gone) gets ``grace``
    seconds to end by itself, then SIGKILL. Without ``/proc`` the group is killed at once.
    """
    deadline = time.monotonic() + grace
    killed = False
    while True:
        members = group_members(pgid)
        if members == []:
            return
        if members is None:
            _killpg(pgid)
            return
        if not killed and time.monotonic() >= deadline:
            _killpg(pgid)
            killed = True
            deadline = time.monotonic() + grace
        elif killed and time.monotonic() >= deadline:
            log.warning("processes %s of dbt's process group %d survive SIGKILL", members, pgid)
            return
        time.sleep(0.01)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
