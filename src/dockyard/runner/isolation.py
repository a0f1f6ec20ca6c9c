"""What a dbt step sees of the files dockyard and the other environments keep.

Every dbt process runs as the same user as dockyard, so without more it can read (with
DuckDB's ``read_text``/``read_blob``, say) the whole state folder: the store
(``dockyard.db``), every run's logs, and the target folders of *other* environments,
whose ``partial_parse.msgpack``, ``manifest.json`` and compiled SQL hold the values of the
variables their models read with ``env_var()``, and the ``file:`` secrets of other
environments.

A :class:`FileView` names what a step must not see (``hide``: folders are covered with an
empty private tmpfs, files with ``/dev/null``) and what it needs inside them (``reveal``:
its own target folder, its derived profiles, its ``--state`` folder, bound back in place).
:func:`enter_view` applies it to the calling process (the dbt process, before dbt starts)
in a mount namespace of its own: ``unshare(CLONE_NEWNS)`` as root, with a user namespace
mapping only the current user otherwise (``CLONE_NEWUSER``, where the kernel allows
unprivileged user namespaces). Nothing changes for any other process.

:func:`enter_view` must be self-contained (no module-level names): the subprocess-mode
bootstrap carries its source (see :mod:`dockyard.runner.invocation`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# what dockyard keeps in state_dir, covered one by one when the project lies inside it
DOCKYARD_ENTRIES = ("targets", "profiles", "runs", "freshness", "overrides", "dbt-logs")
STORE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")


@dataclass(frozen=True)
class FileView:
    hide: tuple[str, ...] = ()
    reveal: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hide)

    def to_json(self) -> str:
        return json.dumps({"hide": list(self.hide), "reveal": list(self.reveal)})


def enter_view(hide=(), reveal=()):
    """Cover ``hide`` and bind ``reveal`` back, in a new mount namespace of this process.
    Returns None, or why no namespace could be made (the step then runs with the usual
    view); raises OSError when one was made but the view could not be built."""
    import ctypes
    import os

    if not hide or not os.path.isdir("/proc/self"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    ms_nosuid, ms_nodev, ms_noexec, ms_bind, ms_rec, ms_private = 2, 4, 8, 4096, 16384, 1 << 18

    def enc(value):
        return None if value is None else os.fsencode(value)

    def mount(source, target, fstype, flags, data=None):
        if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {target}: {os.strerror(err)}")

    def under(path, folder):
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    covered = []
    for path in sorted({os.path.realpath(p) for p in hide if os.path.lexists(p)}, key=len):
        if not any(under(path, c) for c in covered):  # inside a covered folder already
            covered.append(path)
    reveal = [p for p in {os.path.realpath(p) for p in reveal} if any(under(p, c) for c in covered)]
    for path in reveal:
        if not os.path.exists(path):
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                return str(exc)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(0x00020000 | (0 if uid == 0 else 0x10000000)) != 0:  # CLONE_NEWNS (| CLONE_NEWUSER)
        return "unshare: " + os.strerror(ctypes.get_errno())
    # past this point a failure is the step's error: half a view is no view
    keep = {}
    try:
        if uid != 0:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as fh:
                    fh.write(text)
        mount(None, "/", None, ms_rec | ms_private)  # nothing done here reaches other processes
        for path in reveal:  # opened in this namespace: a bind mount's source must be in it
            keep[path] = (os.open(path, os.O_PATH | os.O_CLOEXEC), os.path.isdir(path))
        for path in covered:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", ms_nosuid | ms_nodev | ms_noexec, "mode=0700,size=1m")
            else:
                mount("/dev/null", path, None, ms_bind)
        for path in sorted(keep, key=len):
            fd, is_dir = keep[path]
            if is_dir:
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            mount(f"/proc/self/fd/{fd}", path, None, ms_bind | ms_rec)
        return None
    finally:
        for fd, _ in keep.values():
            os.close(fd)


def file_view(state_dir, *, base, reveal=(), argv=(), hide_files=()) -> FileView:
    """The view of a step: ``state_dir`` and ``hide_files`` covered; ``reveal`` and every
    argument in ``argv`` naming a path inside ``state_dir`` (relative ones from ``base``,
    dbt's working folder: a ``--state`` folder, say) bound back."""
    import os

    state = os.path.realpath(state_dir)
    shown = {os.path.realpath(p) for p in reveal}
    for arg in map(str, argv):
        if arg.startswith("-"):  # a flag, or --flag=value
            if "=" not in arg:
                continue
            arg = arg.split("=", 1)[1]
        path = os.path.realpath(os.path.join(base, arg))
        if (path == state or path.startswith(state + "/")) and os.path.exists(path):
            shown.add(path)
    covered = [state]
    project = os.path.realpath(base)
    if project == state or project.startswith(state + "/"):  # state_dir: "." — cover its parts
        names = sorted(os.listdir(state)) if os.path.isdir(state) else []
        covered = [os.path.join(state, n) for n in names if n in DOCKYARD_ENTRIES or n.endswith(STORE_SUFFIXES)]
        covered = [p for p in covered if not (project + "/").startswith(p + "/")]
    shown = {p for p in shown if any(p == c or p.startswith(c + "/") for c in covered)}
    return FileView(hide=(*covered, *sorted({os.path.realpath(p) for p in hide_files})), reveal=tuple(sorted(shown)))
