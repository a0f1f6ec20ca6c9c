"""File modes: what dockyard keeps in its state folder is readable by its own user only.

The state folder (``.dockyard`` by default) holds the SQLite run store (with the token
table), dbt's unscrubbed target folders (``manifest.json`` with rendered configs, compiled
SQL, partial-parse files), derived profiles, run logs and artifacts. Every folder dockyard
creates there is 0700 and every file 0600, from the very first command:

* :func:`restrict_umask` (the first thing the ``dockyard`` command does, and every server
  process is a ``dockyard`` command) adds ``077`` to the process umask, so files libraries
  create (SQLite's ``-wal``/``-shm``, Alembic's first write) start private too;
* :func:`private_dir`, :func:`private_file`, :func:`open_private` and :func:`write_private`
  set the modes explicitly, so the library facade (``App`` used from Python, where the
  caller's umask applies) creates the same;
* dbt runs with umask 077 (:func:`dbt_umask`): it writes its target folder (under the state
  folder) itself. ``dbt deps`` is the exception: it writes only into the user's project
  (``dbt_packages/``, ``package-lock.yml``) and keeps the user's own umask.

What dockyard writes into the user's project (``dockyard init``'s ``dockyard.yml``) keeps
the mode the user's own umask gives (:func:`user_mode`). Existing folders and files are
never re-moded behind the user's back: :func:`wide_paths` finds those group or others can
read, for the warnings of ``dockyard validate``, ``dockyard status`` and ``dockyard serve``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
#: How many entries :func:`wide_paths` looks at, at most (a state folder of years of runs).
SCAN_LIMIT = 20000

_user_umask: list[int] = []


def _current_umask() -> int:
    mask = os.umask(PRIVATE_UMASK)
    os.umask(mask)
    return mask


def restrict_umask() -> int:
    """Add 077 to this process's umask (idempotent); returns the user's own umask."""
    if not _user_umask:
        _user_umask.append(_current_umask())
    os.umask(_user_umask[0] | PRIVATE_UMASK)
    return _user_umask[0]


def user_umask() -> int:
    """The umask the user started dockyard with (the current one if never restricted)."""
    return _user_umask[0] if _user_umask else _current_umask()


def user_mode(mode: int = 0o666) -> int:
    """``mode`` as the user's own umask would leave it (for files in the user's project)."""
    return mode & ~user_umask()


def dbt_umask(args: Iterable[str]) -> int:
    """The umask a dbt process runs with: private, except ``dbt deps`` (see the module doc)."""
    first = next(iter(args), None)
    return user_umask() if first == "deps" else user_umask() | PRIVATE_UMASK


def private_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p path`` where every folder it creates is 0700 (existing ones are left as
    they are); returns the path."""
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by another process (which makes it 0700 too)
        os.chmod(folder, DIR_MODE)  # whatever the umask took away, never more than 0700
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def _opener(path: str, flags: int) -> int:
    fd = os.open(path, flags, FILE_MODE)
    with contextlib.suppress(OSError):
        os.fchmod(fd, FILE_MODE)  # a file left from before (or by a crash) becomes private too
    return fd


def open_private(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing a file that is (re)written as 0600."""
    return open(path, mode, opener=_opener, **kwargs)  # noqa: SIM115 - the caller closes it


def write_private(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` as a 0600 file."""
    with open_private(
        path, "wb" if isinstance(data, bytes) else "w", **({} if isinstance(data, bytes) else {"encoding": "utf-8"})
    ) as fh:
        fh.write(data)


def private_file(path: str | os.PathLike) -> Path:
    """Create ``path`` empty as 0600 unless it exists (an existing file is left as it is)."""
    path = Path(path)
    if os.path.lexists(path):  # (also on a read-only file system)
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def is_wide(mode: int) -> bool:
    """Whether group or others have any access."""
    return bool(stat.S_IMODE(mode) & 0o077)


def wide_paths(root: str | os.PathLike, extra: Iterable[str | os.PathLike] = (), limit: int = SCAN_LIMIT) -> list[Path]:
    """Folders and files under ``root`` (and the ``extra`` paths) that group or others can
    access, ``root`` first; symlinks are not followed; at most ``limit`` entries are looked at."""
    found: list[Path] = []
    seen = 0
    root = Path(root)
    stack = [root] if root.is_dir() and not root.is_symlink() else []
    if stack and is_wide(root.lstat().st_mode):
        found.append(root)
    while stack and seen < limit:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            if is_wide(info.st_mode):
                found.append(Path(entry.path))
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
    for path in extra:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISLNK(info.st_mode) and is_wide(info.st_mode) and Path(path) not in found:
            found.append(Path(path))
    return found


def warnings_for(state_dir: str | os.PathLike, extra: Iterable[str | os.PathLike] = ()) -> list[str]:
    """One line per problem (empty when everything is private), naming the paths and the
    ``chmod`` that fixes them."""
    state_dir = Path(state_dir)
    wide = wide_paths(state_dir, extra)
    if not wide:
        return []
    lines = []
    inside = [p for p in wide if p == state_dir or p.is_relative_to(state_dir)]
    outside = [p for p in wide if p not in inside]
    if inside:
        shown = ", ".join(f"{p} ({stat.filemode(p.lstat().st_mode)})" for p in inside[:3])
        more = f" and {len(inside) - 3} more" if len(inside) > 3 else ""
        lines.append(
            f"group or others can read the state folder: {shown}{more}; it holds the token "
            "table, unscrubbed dbt artifacts and logs; fix with: "
            f"chmod -R go-rwx {shlex.quote(str(state_dir))}"
        )
    for path in outside:
        lines.append(
            f"group or others can read {path} ({stat.filemode(path.lstat().st_mode)}); "
            f"fix with: chmod go-rwx {shlex.quote(str(path))}"
        )
    return lines
