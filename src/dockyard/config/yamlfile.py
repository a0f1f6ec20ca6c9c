"""Bounded YAML reading: the one way dockyard reads a YAML file a user supplies.

dockyard.yml, profiles.yml, dbt_project.yml and selectors.yml all go through
:func:`read_yaml`, which refuses, with a located :class:`ConfigError` and never an
internal error, a file that is

* larger than :data:`MAX_BYTES` (checked before reading: only ``MAX_BYTES + 1`` bytes are
  ever read), or not a regular file;
* not UTF-8 (UTF-16/32 with or without a byte-order mark, invalid bytes, a NUL byte);
* a YAML "billion laughs" document: the composer counts every node the document would
  have once its aliases are expanded and stops at :data:`MAX_NODES` (and at
  :data:`MAX_ALIASES` aliases), at the alias that crosses the bound, so a bomb under 1 kB
  is refused in milliseconds; an alias to the node that contains it is refused too;
* nested deeper than :data:`MAX_DEPTH` (ruamel's own ``max_depth``).

The bounds hold whatever reads the parsed data afterwards (pydantic, the copy that drops
ruamel's types), since the expanded size of the document is what they walk.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

from dockyard.errors import ConfigError, Location

MAX_BYTES = 1024 * 1024  # default; DOCKYARD_YAML_MAX_BYTES overrides it
MAX_NODES = 200_000  # nodes of the document with every alias expanded
MAX_ALIASES = 10_000
MAX_DEPTH = 64  # nesting of mappings and sequences

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def max_bytes() -> int:
    try:
        return max(1, int(os.environ.get("DOCKYARD_YAML_MAX_BYTES") or MAX_BYTES))
    except ValueError:
        return MAX_BYTES


def read_yaml(path: Path | str) -> Any:
    """Read and parse one YAML file within the bounds (ConfigError otherwise)."""
    return parse_yaml(read_text(path), str(path))


def read_text(path: Path | str) -> str:
    """The file's text: at most :func:`max_bytes` bytes, UTF-8 (a UTF-8 BOM is dropped)."""
    return decode(read_bytes(path), str(path))


def read_bytes(path: Path | str) -> bytes:
    limit = max_bytes()
    name = str(path)
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(
                    f"{name} is not a regular file",
                    location=Location(name),
                    hint="point dockyard at the YAML file itself",
                )
            if info.st_size > limit:
                raise _too_large(name, info.st_size, limit)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {name}: {exc.strerror or exc}",
            location=Location(name),
            hint="check that the file exists and is readable by this user",
        ) from None
    if len(data) > limit:  # it grew while we read it
        raise _too_large(name, len(data), limit)
    return data


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text of ``data``, or a ConfigError located at the offending line."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise ConfigError(
                f"the file is {encoding} encoded; dockyard reads UTF-8 only",
                location=Location(filename, 1),
                hint=f"save it as UTF-8 (without a byte-order mark), e.g. iconv -f {encoding} -t UTF-8",
            )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    nul = data.find(b"\0")
    if nul >= 0:
        raise ConfigError(
            "the file contains a NUL byte: it is binary, or not UTF-8 (UTF-16?)",
            location=Location(filename, data.count(b"\n", 0, nul) + 1),
            hint="save it as UTF-8 text, or point dockyard at the right file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column})",
            location=Location(filename, line),
            hint="save it as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8), or remove the byte",
        ) from None


def parse_yaml(text: str, filename: str) -> Any:
    """Parse YAML text (round-trip types, so lines stay known) within the node, alias and
    depth bounds; every failure is a ConfigError with the file and, where known, the line."""
    limit = max_bytes()
    if len(text) > limit:  # characters >= bytes / 4: a cheap guard for callers with text in hand
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _too_large(filename, size, limit)
    _check_flow_depth(text, filename)
    yaml = YAML(typ="rt")
    yaml.Composer = BoundedComposer
    yaml.max_depth = MAX_DEPTH
    try:
        return yaml.load(text)
    except ConfigError as exc:
        raise ConfigError(
            exc.what, location=Location(filename, exc.location.line, exc.location.key), hint=exc.hint
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or ""
        if "maximum depth" in problem:
            raise ConfigError(
                f"the YAML is nested more than {MAX_DEPTH} levels deep",
                location=Location(filename, line),
                hint="flatten it: no dockyard or dbt file needs that depth",
            ) from None
        raise ConfigError(
            f"invalid YAML: {problem}",
            location=Location(filename, line),
            hint="fix the YAML syntax (indentation, quotes, a missing ':')",
        ) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        char = exc.character if isinstance(exc.character, int) else 0
        raise ConfigError(
            f"invalid YAML: the character U+{char:04X} is not allowed in YAML",
            location=Location(filename, line),
            hint="remove it (a control character?)",
        ) from None
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply", location=Location(filename), hint="flatten it") from None
    except Exception as exc:  # ruamel raises several unrelated types (duplicate keys, ...)
        raise ConfigError(
            f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            location=Location(filename),
            hint="fix the YAML syntax",
        ) from None


def _check_flow_depth(text: str, filename: str) -> None:
    """Refuse a line nesting ``[``/``{`` deeper than :data:`MAX_DEPTH`: ruamel's scanner is
    quadratic in the nesting on one line (seconds for a 10 kB line), before the composer's
    ``max_depth`` can stop it."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.count("[") + line.count("{") <= MAX_DEPTH:
            continue
        depth = 0
        for char in line:
            if char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(
                        f"the YAML is nested more than {MAX_DEPTH} levels deep",
                        location=Location(filename, number),
                        hint="flatten it: no dockyard or dbt file needs that depth",
                    )
            elif char in "]}":
                depth = max(0, depth - 1)


class BoundedComposer(Composer):
    """ruamel's composer, counting the nodes of the document with its aliases expanded.

    ``total`` grows by one for each node composed and by the expanded size of the target of
    each alias, so it is the size a reader of the result walks; composing stops (a
    ConfigError at the alias's line and key) when it passes :data:`MAX_NODES`. Sizes are
    kept for anchored nodes only, so the cost is linear in the text.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.total = 0
        self.aliases = 0
        self._sizes: dict[int, int] = {}
        self._path: list[Any] = []

    def compose_document(self) -> Any:
        self.total, self.aliases, self._sizes, self._path = 0, 0, {}, []
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        key = index.value if isinstance(index, ScalarNode) else index if isinstance(index, int) else None
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                self.aliases += 1
                size = self._sizes.get(id(target))
                if size is None:
                    self._refuse(
                        f"the alias *{event.anchor} refers to the node that contains it",
                        event,
                        key,
                        "remove the alias: recursive YAML is not supported",
                    )
                if self.aliases > MAX_ALIASES:
                    self._refuse(
                        f"the YAML uses more than {MAX_ALIASES} aliases",
                        event,
                        key,
                        "write the values out, or use fewer anchors",
                    )
                self._add(size, event, key)
            return super().compose_node(parent, index)
        before = self.total
        self._add(1, self.parser.peek_event(), key)
        self._path.append(key)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._path.pop()
        if node.anchor is not None:
            self._sizes[id(node)] = self.total - before
        return node

    def _add(self, size: int, event: Any, key: Any) -> None:
        self.total += size
        if self.total > MAX_NODES:
            self._refuse(
                f"the YAML expands to more than {MAX_NODES:,} values (an alias bomb?)",
                event,
                key,
                "remove the anchors (&name) and aliases (*name) that multiply the document",
            )

    def _refuse(self, what: str, event: Any, key: Any, hint: str) -> None:
        mark = event.start_mark
        keys = [k for k in (*self._path, key) if isinstance(k, (str, int))]
        raise ConfigError(what, location=Location(None, mark.line + 1 if mark else None, _dotted(keys)), hint=hint)


def _too_large(name: str, size: int, limit: int) -> ConfigError:
    return ConfigError(
        f"the file is {_size(size)}, more than the {_size(limit)} dockyard reads",
        location=Location(name, 1),
        hint="check that this is the right file (dockyard's and dbt's YAML files are a few kB); "
        "set DOCKYARD_YAML_MAX_BYTES to raise the limit",
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("kiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def _dotted(keys: list) -> str | None:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or None
