"""Canary secrets and a scanner that looks for them in every sink dockyard writes to.

A *canary* is a random secret planted for one test. The scanner searches data (files, folder
trees, every row of every table of a store, a command's output, later an HTTP response or a
notification body) for the canary and for the forms in which a secret usually leaks:

* raw, and JSON-string-escaped;
* URL-encoded: ``quote`` (``/`` safe), ``quote`` with nothing safe, ``quote_plus``;
* hex, lower and upper case;
* base64, standard and URL-safe alphabet, for each of the three byte alignments the value
  can have inside a longer encoded blob: the characters of ``base64(prefix + value)`` that
  depend on the value's bytes only (prefix of 0, 1 or 2 bytes; the edges, which also hold
  bits of the neighbouring bytes or padding, are stripped).

This is deliberately an independent implementation (it does not import
:mod:`dockyard.secrets`), so a mistake in dockyard's scrubber is not repeated here.

Typical use::

    scanner = CanaryScanner([api_token, db_password])
    scanner.scan_tree(project_dir, exclude=[".dockyard/targets"])
    scanner.scan_store(store_url)
    scanner.scan_process("dockyard show 1", proc)
    scanner.assert_clean()   # fails listing every sink where a canary was found

Every finding names its sink (file path, ``table.column`` and row, or command and stream).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

# Characters that make the URL-encoded, JSON and base64 forms differ from the raw value.
SPECIAL_SUFFIX = "/p@ss w+rd=&?"


def _base64_cores(raw: bytes) -> dict[str, str]:
    """Stable cores of base64(p + raw) for |p| = 0, 1, 2, in both alphabets."""
    out: dict[str, str] = {}
    n = len(raw)
    for k in range(3):
        first = -(-8 * k // 6)  # first character holding no bit of the prefix
        end = (8 * (k + n)) // 6  # characters from here on hold bits of what follows
        for alphabet, encode in (("std", base64.b64encode), ("urlsafe", base64.urlsafe_b64encode)):
            core = encode(b"\x00" * k + raw).decode("ascii")[first:end]
            out[f"base64-{alphabet}-offset{k}"] = core
    return out


@dataclass(frozen=True)
class Canary:
    label: str  # what it stands for, e.g. "SHOP_API_TOKEN (env: secret)"
    value: str

    def forms(self) -> dict[str, str]:
        """Form name -> the string to look for."""
        v = self.value
        raw = v.encode("utf-8")
        hexed = binascii.hexlify(raw).decode("ascii")
        forms = {
            "raw": v,
            "json-escaped": json.dumps(v)[1:-1],
            "url-quote": quote(v),
            "url-quote-nosafe": quote(v, safe=""),
            "url-quote_plus": quote_plus(v),
            "hex": hexed,
            "HEX": hexed.upper(),
            **_base64_cores(raw),
        }
        return forms

    def reversed(self, label: str | None = None) -> Canary:
        return Canary(label or f"{self.label} reversed", self.value[::-1])


def new_canary(label: str, *, special: bool = False) -> Canary:
    """A fresh random canary: ``canary_`` + 24 hex digits (a valid SQL identifier), or with
    ``special`` a value that also holds ``/ @ space + = & ?`` (so that its URL-encoded forms
    differ from the raw one) followed by 12 more hex digits."""
    value = "canary_" + secrets.token_hex(12)
    if special:
        value += SPECIAL_SUFFIX + secrets.token_hex(6)
    return Canary(label, value)


@dataclass(frozen=True)
class Finding:
    sink: str  # e.g. "file .dockyard/runs/1/logs/step-2.log", "store node_results.message (id=5)"
    canary: str  # the canary's label
    form: str  # e.g. "raw", "base64-std-offset1"
    context: str  # the text around the match

    def __str__(self) -> str:
        return f"{self.sink}: canary {self.canary!r} ({self.form}) in ...{self.context}..."


@dataclass
class CanaryScanner:
    """Searches sinks for canaries; collects findings and what was scanned."""

    canaries: list[Canary] = field(repr=False)
    findings: list[Finding] = field(default_factory=list, repr=False)
    scanned: dict[str, int] = field(default_factory=dict, repr=False)  # sink -> bytes scanned
    context_chars: int = 60

    def __post_init__(self) -> None:
        self.canaries = list(self.canaries)
        # one needle per distinct string; remember which canary and form(s) it stands for
        by_needle: dict[bytes, tuple[str, str]] = {}
        for canary in self.canaries:
            if len(canary.value) < 8:
                raise ValueError(f"canary {canary.label!r} is too short to scan for reliably")
            for form, text in canary.forms().items():
                needle = text.encode("utf-8")
                if needle in by_needle:
                    label, forms = by_needle[needle]
                    if label == canary.label:
                        by_needle[needle] = (label, f"{forms}|{form}")
                    continue
                by_needle[needle] = (canary.label, form)
        self._needles = by_needle
        ordered = sorted(by_needle, key=len, reverse=True)
        self._re = re.compile(b"|".join(re.escape(n) for n in ordered))

    # -- primitives ------------------------------------------------------------------------
    def scan(self, sink: str, data: str | bytes | None) -> list[Finding]:
        """Scan one piece of data; returns (and records) the findings."""
        if data is None:
            return []
        raw = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else bytes(data)
        self.scanned[sink] = self.scanned.get(sink, 0) + len(raw)
        found = []
        for match in self._re.finditer(raw):
            label, form = self._needles[match.group(0)]
            lo, hi = max(0, match.start() - self.context_chars), match.end() + self.context_chars
            context = raw[lo:hi].decode("utf-8", errors="replace").replace("\n", "\\n")
            found.append(Finding(sink, label, form, context))
        self.findings.extend(found)
        return found

    def scan_file(self, path: str | os.PathLike, sink: str | None = None) -> list[Finding]:
        path = Path(path)
        return self.scan(sink or f"file {path}", path.read_bytes())

    def scan_tree(
        self, root: str | os.PathLike, *, exclude: Iterable[str] = (), label: str | None = None
    ) -> list[Path]:
        """Scan every file under ``root`` (raw bytes: a SQLite file's free pages and WAL
        included), except the relative paths (folders or files) in ``exclude``. Returns the
        files scanned."""
        root = Path(root)
        skip = {Path(e) for e in exclude}
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(root)
            dirnames[:] = sorted(d for d in dirnames if rel_dir / d not in skip)
            for name in sorted(filenames):
                rel = rel_dir / name
                if rel in skip:
                    continue
                path = root / rel
                if not path.is_file():
                    continue
                try:
                    data = path.read_bytes()
                except OSError:  # vanished (a SQLite -shm file, say)
                    continue
                self.scan(f"file {label or root}/{rel}", data)
                files.append(path)
        return files

    def scan_process(self, command: str, proc: subprocess.CompletedProcess | tuple[str, str]) -> list[Finding]:
        """Scan a command's standard output and standard error."""
        out, err = (proc.stdout, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
        return self.scan(f"terminal `{command}` stdout", out) + self.scan(f"terminal `{command}` stderr", err)

    def scan_value(self, sink: str, value) -> list[Finding]:
        """Scan a JSON-like value (dicts, lists, strings, numbers, bytes)."""
        if value is None:
            return []
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.scan(sink, bytes(value))
        if isinstance(value, (dict, list, tuple)):
            return self.scan(sink, json.dumps(value, ensure_ascii=False, default=str))
        return self.scan(sink, str(value))

    def scan_store(self, url: str) -> dict[str, int]:
        """Every row of every table of the store at ``url`` (SQLite or PostgreSQL), each column
        value scanned as its own sink ``store <table>.<column> (row ...)``. Returns
        table -> row count."""
        from sqlalchemy import MetaData, create_engine, select

        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        engine = create_engine(url)
        counts: dict[str, int] = {}
        try:
            meta = MetaData()
            meta.reflect(engine)
            with engine.connect() as conn:
                for table in meta.sorted_tables:
                    pk = [c.name for c in table.primary_key.columns]
                    rows = conn.execute(select(table)).mappings().all()
                    counts[table.name] = len(rows)
                    for n, row in enumerate(rows):
                        key = ", ".join(f"{c}={row[c]}" for c in pk) if pk else f"#{n}"
                        for column, value in row.items():
                            self.scan_value(f"store {table.name}.{column} (row {key})", value)
        finally:
            engine.dispose()
        return counts

    def scan_mapping(self, sink: str, mapping: Mapping[str, object]) -> list[Finding]:
        """Keys and values of a mapping (HTTP headers, say), each as ``sink[key]``."""
        found = self.scan(f"{sink} (keys)", "\n".join(str(k) for k in mapping))
        for key, value in mapping.items():
            found += self.scan_value(f"{sink}[{key}]", value)
        return found

    # -- results ---------------------------------------------------------------------------
    def report(self) -> str:
        lines = [f"{len(self.findings)} canary occurrence(s) in {len({f.sink for f in self.findings})} sink(s):"]
        lines += [f"  - {f}" for f in self.findings]
        return "\n".join(lines)

    def assert_clean(self) -> None:
        assert not self.findings, self.report()

    def found(self, label: str) -> list[Finding]:
        return [f for f in self.findings if f.canary == label]
