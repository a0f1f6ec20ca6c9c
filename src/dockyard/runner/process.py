"""Process plumbing shared by everything that starts dbt: the parent-death signal and the
members of a process group."""

from __future__ import annotations

import os


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
