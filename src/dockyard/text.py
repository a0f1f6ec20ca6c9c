"""Text from users and from the store: what a displayed name may hold, what a store can keep,
and how the terminal shows characters that would otherwise act on it.

* :func:`control_problem` -- names that are displayed (job, environment and token names, a
  run's cause, a git branch) refuse control characters: C0 (including newline and tab),
  DEL, C1, the bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069), the
  bidi marks U+200E, U+200F, U+061C and the line/paragraph separators U+2028, U+2029.
  dockyard.yml's names and the API's go through this one check.
* :func:`unstorable_problem` -- NUL and lone surrogates (``"\\ud800"`` in JSON), which
  PostgreSQL text cannot hold and SQLite's driver cannot encode: refused in every request
  value, the same way on both stores.
* :func:`escape` -- every control character above written as a visible escape (``\\x1b``,
  ``\\u202e``) for terminal output; ``keep`` names characters to leave alone (``"\\n\\t"``
  for log text), ``colours`` keeps SGR colour sequences (``ESC [ ... m``, what dbt's log
  lines use) while every other escape sequence is neutralised.
"""

from __future__ import annotations

import re

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
SGR = re.compile("\x1b\\[[0-9;:]{0,64}m")


def _code(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def control_problem(text: str, field: str) -> str | None:
    """A message if ``text`` holds a control character (see the module doc), else None."""
    if not isinstance(text, str):
        return None
    found = CONTROL.search(text)
    if found is None:
        return None
    return f"{field} must not contain control characters (found {_code(found.group())} at position {found.start() + 1})"


def unstorable_problem(text: str, field: str) -> str | None:
    """A message if ``text`` holds a character no store can keep (NUL, a lone surrogate)."""
    if not isinstance(text, str):
        return None
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    what = "a NUL byte" if found.group() == "\x00" else f"a lone surrogate ({_code(found.group())})"
    return f"{field} must not contain {what}"


def storable(value):
    """``value`` (a string, or JSON data holding strings) with NUL bytes and lone surrogates
    replaced by U+FFFD: for text dockyard records but did not ask for (dbt's node messages
    and adapter responses), which must never make a write fail."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value) if UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def escape(text: object, *, keep: str = "", colours: bool = False) -> str:
    """``text`` with control characters written as visible escapes (see the module doc)."""
    value = str(text)
    if not colours:
        return CONTROL.sub(lambda m: m.group() if m.group() in keep else _code(m.group()), value)
    out, last = [], 0
    for match in SGR.finditer(value):
        out.append(escape(value[last : match.start()], keep=keep))
        out.append(match.group())
        last = match.end()
    out.append(escape(value[last:], keep=keep))
    return "".join(out)
