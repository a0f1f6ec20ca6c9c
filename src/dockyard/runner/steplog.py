"""A running step's log file (``logs/step-<n>.log``), kept whatever happens to its folder.

The executor writes every scrubbed line of dbt's output here. The file system may change
under a run that takes hours: someone deletes the run folder (``rm -rf``), the log file, or
the disk fills up. None of that may crash the run (``internal_error``) or lose the log
silently:

* the file is opened read-write, so when it has disappeared from its path at the end of the
  step (:meth:`StepLog.vanished`: unlinked, or its folder deleted, or replaced), what dbt
  wrote is read back from the open file and written again at the same path, its folders
  recreated (:meth:`StepLog.restore`);
* a write that fails (``ENOSPC``, ``EIO``, a path that cannot be opened) is not raised: the
  first error is kept in :attr:`StepLog.error` and later lines go only to the recorder; the
  executor then ends the step ``error``, saying why.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any

from dockyard.permissions import open_private, private_dir


def describe(exc: OSError) -> str:
    """``exc`` in a few words: ``No space left on device``, ``Permission denied: <path>``."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text}: {exc.filename}" if exc.filename else text


class StepLog:
    """The log file of one step; a context manager with ``write``/``flush`` like a file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.error: OSError | None = None  # the first write error (nothing raised)
        self.restored = False
        self._fh: IO[Any] | None = None
        try:
            private_dir(self.path.parent)
            self._fh = open_private(self.path, "w+", encoding="utf-8", errors="replace")
        except OSError as exc:
            self.error = exc

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, exc: OSError) -> None:
        self.error = self.error or exc
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()

    def write(self, text: str) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(text)
        except OSError as exc:
            self._failed(exc)

    def flush(self) -> None:
        if self._fh is None:
            return
        try:
            self._fh.flush()
        except OSError as exc:
            self._failed(exc)

    def vanished(self) -> bool:
        """Whether the open file is no longer the one at :attr:`path`."""
        if self._fh is None:
            return False
        try:
            mine, there = os.fstat(self._fh.fileno()), os.stat(self.path)
        except OSError:
            return True
        return (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino)

    def restore(self) -> None:
        """Write the log again at :attr:`path` (its folders recreated) from the open file."""
        self.flush()
        if self._fh is None:
            return
        try:
            self._fh.seek(0)
            text = self._fh.read()
            private_dir(self.path.parent)
            fresh = open_private(self.path, "w+", encoding="utf-8", errors="replace")
        except OSError as exc:
            self._failed(exc)
            return
        old, self._fh = self._fh, fresh
        with contextlib.suppress(OSError):
            old.close()
        self.write(text)
        self.flush()
        self.restored = self.error is None

    def close(self) -> None:
        if self._fh is None:
            return
        try:
            self._fh.close()
        except OSError as exc:
            self.error = self.error or exc
        self._fh = None


def append_line(path: Path, line: str) -> None:
    """Add a line to a step's log after the step (best effort: the disk may be the problem)."""
    with contextlib.suppress(OSError):
        private_dir(path.parent)
        with open_private(path, "a", encoding="utf-8", errors="replace") as fh:
            fh.write(line + "\n")
