"""The one way dockyard serves a file (artifacts, logs, docs): a path inside a root, never out.

:func:`resolve` decodes the requested path fully (percent-encoding applied several times is
undone), rejects NUL, backslashes, absolute paths, drive letters, ``.``/``..`` components
and characters that Unicode normalisation turns into separators or dots, then resolves
symlinks and requires the result to be a regular file inside the (resolved) root.
Every refusal is a plain 404, so nothing about the file system leaks. A test fails the
build when an API module reads files any other way.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from dockyard.errors import NotFoundError

CHUNK = 64 * 1024
DRIVE = re.compile(r"^[A-Za-z]:")


class OutsideRoot(NotFoundError):
    """The path is not a file inside its root (or is not acceptable at all)."""


def _decode(text: str) -> str:
    for _ in range(8):
        decoded = unquote(text, errors="strict")
        if decoded == text:
            return text
        text = decoded
    raise OutsideRoot("the path is encoded too many times")


def clean(relpath: str) -> str:
    """``relpath`` decoded and checked (see the module doc); raises :class:`OutsideRoot`."""
    if not isinstance(relpath, str) or not relpath or len(relpath) > 1024:
        raise OutsideRoot("no such file")
    try:
        text = _decode(relpath)
    except UnicodeDecodeError:
        raise OutsideRoot("no such file") from None
    normal = unicodedata.normalize("NFKC", text)
    for candidate in (text, normal):
        if "\x00" in candidate or "\\" in candidate or candidate.startswith(("/", "~")) or DRIVE.match(candidate):
            raise OutsideRoot("no such file")
        parts = candidate.split("/")
        if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in ("", ".", ".."):
            raise OutsideRoot("no such file")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        raise OutsideRoot("no such file")
    return text


def resolve(root: Path, relpath: str) -> Path:
    """The regular file ``relpath`` inside ``root``; raises :class:`OutsideRoot` otherwise."""
    text = clean(relpath)
    base = Path(root).resolve()
    path = (base / text).resolve()
    if not path.is_relative_to(base) or path == base:
        raise OutsideRoot("no such file")
    try:
        info = path.stat()
    except OSError:
        raise OutsideRoot("no such file") from None
    if not stat.S_ISREG(info.st_mode):
        raise OutsideRoot("no such file")
    return path


def exists(root: Path, relpath: str) -> bool:
    try:
        resolve(root, relpath)
    except OutsideRoot:
        return False
    return True


def read_bytes(root: Path, relpath: str, *, tail: int | None = None) -> bytes:
    """The file's content (its last ``tail`` bytes when given)."""
    path = resolve(root, relpath)
    with open(path, "rb") as fh:
        if tail is not None:
            size = os.fstat(fh.fileno()).st_size
            if size > tail:
                fh.seek(size - tail)
        return fh.read()


def read_text(root: Path, relpath: str, *, tail: int | None = None) -> str:
    return read_bytes(root, relpath, tail=tail).decode("utf-8", errors="replace")


def read_from(root: Path, relpath: str, offset: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``offset`` (for following a growing log); ``b""`` when the
    file does not exist (yet)."""
    try:
        path = resolve(root, relpath)
    except OutsideRoot:
        return b""
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(limit)


def stream(root: Path, relpath: str) -> tuple[Iterator[bytes], int]:
    """An iterator over the file's chunks (opened now, so later changes of the path do not
    matter) and its size."""
    path = resolve(root, relpath)
    fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
    size = os.fstat(fh.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with fh:
            while True:
                data = fh.read(CHUNK)
                if not data:
                    return
                yield data

    return chunks(), size
