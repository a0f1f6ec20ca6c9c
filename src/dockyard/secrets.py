"""Masking secret values in everything dockyard keeps: step logs, artifacts, node messages.

A :class:`Scrubber` is built once per run from the secret values (the environment's
``DBT_ENV_SECRET_*`` variables plus any value the configuration marks as secret). It
replaces each value and the forms in which a value commonly leaks:

* the value itself, and the value stripped of surrounding whitespace;
* its JSON string escape (so a value holding ``"`` or ``\\`` is found inside a JSON artifact);
* URL-encoded (``quote`` with no safe characters, ``quote`` with ``/`` safe, ``quote_plus``);
* hex, lower and upper case;
* base64 (standard and URL-safe alphabet): for each of the three byte alignments the value
  can have inside a longer encoded blob (``user:password`` in a Basic auth header, say),
  the stable core of ``base64(prefix + value)``, i.e. the characters that depend on the
  value's bytes only.

All forms go into one compiled alternation, longest first, so a scrub is one pass of one
regex. Values shorter than :data:`MIN_LENGTH` characters are not masked (masking ``"1"``
would shred every log); a warning is logged once per process, as Airflow does.

Scrubbing fails closed: if it raises, the text is replaced by :data:`REDACTION_FAILED`.

:func:`read_reference` is the one reader of secret references (``env:NAME``, ``file:PATH``)
for environments' secrets, webhook secrets and alert channels.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote, quote_plus

log = logging.getLogger(__name__)

MASK = "***"
REDACTION_FAILED = "<redaction-failed>"
MIN_LENGTH = 5
SECRET_ENV_PREFIX = "DBT_ENV_SECRET_"

_warned_short = False


def _warn_short_once() -> None:
    global _warned_short
    if not _warned_short:
        _warned_short = True
        log.warning(
            "A secret value shorter than %d characters is not masked in logs and artifacts; use longer secrets.",
            MIN_LENGTH,
        )


def _base64_cores(raw: bytes) -> set[str]:
    """The parts of base64(p + raw + s) that depend on ``raw`` only, for |p| = 0, 1, 2."""
    cores: set[str] = set()
    n = len(raw)
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode("ascii")
        start = -(-8 * k // 6)  # ceil: the first char holding no prefix bits
        end = (8 * (k + n)) // 6  # floor: the last char holding no suffix bits
        core = encoded[start:end]
        if len(core) >= 4:
            cores.add(core)
            cores.add(core.replace("+", "-").replace("/", "_"))
    return cores


def variants(value: str) -> set[str]:
    """Every form of ``value`` that :class:`Scrubber` masks (empty for a short value)."""
    forms: set[str] = set()
    for v in {value, value.strip()}:
        if len(v) < MIN_LENGTH:
            continue
        raw = v.encode("utf-8")
        forms.add(v)
        forms.add(json.dumps(v)[1:-1])
        forms.add(json.dumps(v, ensure_ascii=False)[1:-1])
        forms.add(quote(v, safe=""))
        forms.add(quote(v))
        forms.add(quote_plus(v))
        hexed = binascii.hexlify(raw).decode("ascii")
        forms.add(hexed)
        forms.add(hexed.upper())
        forms.update(_base64_cores(raw))
    return {f for f in forms if len(f) >= MIN_LENGTH - 1}


class Scrubber:
    """Replaces secret values (and their encoded forms) with ``***``."""

    def __init__(self, values: Iterable[str] = ()):
        forms: set[str] = set()
        for value in values:
            if value is None:
                continue
            value = str(value)
            if not value.strip():
                continue
            if len(value.strip()) < MIN_LENGTH:
                _warn_short_once()
                continue
            forms |= variants(value)
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self._forms = tuple(ordered)
        if ordered:
            self._re: re.Pattern[str] | None = re.compile("|".join(re.escape(f) for f in ordered))
            self._re_bytes: re.Pattern[bytes] | None = re.compile(
                b"|".join(re.escape(f.encode("utf-8")) for f in ordered)
            )
        else:
            self._re = None
            self._re_bytes = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], extra: Iterable[str] = ()) -> Scrubber:
        """A scrubber for ``extra`` plus every ``DBT_ENV_SECRET_*`` value of ``env``."""
        values = [v for k, v in env.items() if k.startswith(SECRET_ENV_PREFIX)]
        return cls([*extra, *values])

    def __bool__(self) -> bool:
        return self._re is not None

    @property
    def forms(self) -> tuple[str, ...]:
        return self._forms

    def scrub(self, text: str) -> str:
        try:
            if self._re is None:
                return text
            return self._re.sub(MASK, text)
        except Exception:  # fail closed
            return REDACTION_FAILED

    def scrub_bytes(self, data: bytes) -> bytes:
        try:
            if self._re_bytes is None:
                return data
            return self._re_bytes.sub(MASK.encode("ascii"), data)
        except Exception:  # fail closed
            return REDACTION_FAILED.encode("ascii")

    def scrub_obj(self, obj):
        """Scrub every string inside a JSON-like value (dicts, lists, strings)."""
        if self._re is None:
            return obj
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {k: self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub_obj(v) for v in obj]
        return obj


# -- secret references -------------------------------------------------------------------------
MAX_SECRET_BYTES = 64 * 1024  # a secret file (file:PATH) larger than this is refused


class UnreadableSecret(Exception):
    """A secret reference that gives no value: ``problem`` says why (to follow the caller's
    words for the secret, e.g. ``secret TOKEN``), ``hint`` how to fix it. Each caller raises
    its own located error from it."""

    def __init__(self, problem: str, hint: str):
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


def is_reference(value: str) -> bool:
    return value.startswith(("env:", "file:"))


def read_reference(ref: str, *, allow_empty: bool = False) -> str:
    """The value behind ``env:NAME`` (the variable's value) or ``file:PATH`` (the file's
    UTF-8 text, stripped, at most :data:`MAX_SECRET_BYTES`: a secret is short, so a reference
    to ``/dev/zero`` is refused, never read to its end). Raises :class:`UnreadableSecret`
    when the variable is not set, the file cannot be read, is too large or not UTF-8, or the
    value is empty (unless ``allow_empty``)."""
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if value is None or (not value and not allow_empty):
            state = "which is not set" if value is None else "which is empty"
            raise UnreadableSecret(f"reads ${name}, {state}", f"export {name}=... in the environment dockyard runs in")
        return value
    if not ref.startswith("file:"):
        raise UnreadableSecret(f"is {ref[:20]!r}, not a reference", "write env:NAME or file:PATH")
    path = Path(os.path.expanduser(ref[5:]))
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise UnreadableSecret(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}", "check the file exists and is readable"
        ) from None
    if len(data) > MAX_SECRET_BYTES:
        raise UnreadableSecret(
            f"{path} is larger than {MAX_SECRET_BYTES // 1024} kiB",
            "point the reference at a file holding only the secret",
        )
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UnreadableSecret(f"{path} is not UTF-8 text", "store the secret as UTF-8 text") from None
    if not value and not allow_empty:
        raise UnreadableSecret(f"{path} is empty", "write the secret into it")
    return value
