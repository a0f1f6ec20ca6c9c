"""Where a run's dbt writes: a target folder of its own, and a lock for the project folder.

**A target folder per run.** The runs of one environment may overlap (two jobs, or a job
with ``allow_overlap``). With one target folder per environment they would read each
other's ``run_results.json``, ``manifest.json``, ``sources.json`` and ``catalog.json`` (the
executor can only tell a step's files from older ones by their time). So every run gets
its own ``--target-path``, ``<run folder>/target``, shared by its steps in order (``dbt
retry`` reads the previous step's ``run_results.json``) and deleted when the run ends; the
steps' artifacts are copied from it into ``artifacts/step-<n>/`` as before.

What must survive between runs is dbt's partial parsing (``partial_parse.msgpack``, which
makes the next parse of a large project take a second instead of a minute). The
environment's folder (``<state_dir>/targets/<env>``) keeps the last one: :meth:`RunTarget.prepare`
copies it into the run's folder before the first step, :meth:`RunTarget.publish` copies
the one a step wrote back (to a temporary name, then ``os.replace``: a reader sees the old
file or the new one, never half of one). The last writer wins, which is harmless: dbt checks
the file against the project, the profile, the vars and the environment before using it,
and parses in full when it does not match.

**The project lock.** ``dbt deps`` empties and refills ``dbt_packages`` (and writes
``package-lock.yml``), ``dbt clean`` deletes the project's ``clean-targets``: in the project
folder, which every run of the project shares. Two at once delete each other's files
(``FileNotFoundError`` in dbt's ``rmtree``). :class:`ProjectLock` is an exclusive
``fcntl.flock`` on a file of the state folder, held by the executor while such a step's dbt
runs, so those steps of all runs on one host take turns. The lock is released when its
holder ends, however it ends (the kernel drops it with the last open descriptor).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path

from dockyard.permissions import open_private, private_dir

PARTIAL_PARSE = "partial_parse.msgpack"


class RunTarget:
    """The run's own dbt target folder (``own``) and the environment's (``shared``)."""

    def __init__(self, shared: Path, own: Path, run_id: int):
        self.shared = Path(shared)
        self.own = Path(own)
        self.run_id = run_id
        self.seeded = False  # a partial_parse.msgpack was copied in
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last seeded or published

    def prepare(self) -> None:
        """Create the run's folder (empty) and seed it with the environment's partial parse."""
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.own)  # left by an earlier attempt of this run (a requeue)
        private_dir(self.own)
        self.seeded = _copy_atomic(self.shared / PARTIAL_PARSE, self.own / PARTIAL_PARSE, self.run_id)
        self._stamp = _stamp(self.own / PARTIAL_PARSE)

    def publish(self) -> bool:
        """Copy the partial parse to the environment's folder, atomically, when a step wrote
        it (dbt rewrites it after a parse that changed something). True when it did."""
        src = self.own / PARTIAL_PARSE
        stamp = _stamp(src)
        if stamp is None or stamp == self._stamp:
            return False  # dbt found nothing to re-parse and kept the file it was given
        private_dir(self.shared)
        published = _copy_atomic(src, self.shared / PARTIAL_PARSE, self.run_id)
        self._stamp = stamp
        return published

    def remove(self) -> None:
        shutil.rmtree(self.own, ignore_errors=True)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _copy_atomic(src: Path, dest: Path, run_id: int) -> bool:
    """Copy ``src`` to ``dest`` through a temporary file in ``dest``'s folder and
    ``os.replace``; False when ``src`` does not exist."""
    tmp = dest.parent / f".{dest.name}.{run_id}.{os.getpid()}.tmp"
    try:
        with open(src, "rb") as fin, open_private(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, dest)
    except FileNotFoundError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.filename and Path(exc.filename) == src:
            return False
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return True


class ProjectLock:
    """An exclusive ``flock`` on ``path``, taken without blocking (:meth:`try_acquire`) so
    that the caller can go on heart-beating and watching its cancel flag while it waits."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self, holder: str) -> bool:
        if self._fd is None:
            private_dir(self.path.parent)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        with contextlib.suppress(OSError):  # who holds it, for the log of those who wait
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{holder} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})".encode(), 0)
        return True

    def holder(self) -> str:
        """What the current holder wrote into the file (``""`` when unknown)."""
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip()[:200]
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is None:
            return
        # LOCK_UN, not only close: a dbt child forked while the lock was held shares the
        # open file description, and would otherwise keep the lock until it exits
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
