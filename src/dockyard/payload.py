"""Request payloads: JSON parsed within bounds, and values every store can keep.

Every body (JSON or form) and every JSON text inside one goes through :func:`loads` and
:func:`check`, so no route can miss them:

* nesting deeper than :data:`MAX_DEPTH` levels (objects and arrays) is refused, and
  Python's ``RecursionError`` on absurd depths never escapes;
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow a float (``1e400``) are
  refused: they are not JSON (RFC 8259), PostgreSQL's ``jsonb`` cannot store them and an
  answer echoing them could not be written;
* a string (key or value) holding a NUL byte or a lone surrogate is refused with the field
  named (:func:`dockyard.text.unstorable_problem`), the same answer on SQLite and
  PostgreSQL.
"""

from __future__ import annotations

import json
import math
from typing import Any

from dockyard.errors import DockyardError
from dockyard.text import unstorable_problem

MAX_DEPTH = 32  # a dbt Cloud job body nests 4 levels deep


class PayloadError(DockyardError):
    """A request body or parameter that no route can use (400)."""


def _constant(name: str) -> Any:
    raise PayloadError(f"{name} is not a JSON number", hint="send finite numbers only")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"{text} is out of range for a number", hint="send finite numbers only")
    return value


def loads(raw: str | bytes, what: str = "the request body") -> Any:
    """``json.loads`` within the bounds above; a :class:`PayloadError` (400) otherwise.
    Invalid JSON raises ``ValueError`` as ``json.loads`` does."""
    try:
        data = json.loads(raw, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    text = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    plain = text.isascii() and b"\x00" not in text and b"\\u" not in text  # no NUL, no surrogate possible
    if not plain or text.count(b"[") + text.count(b"{") > MAX_DEPTH:
        check(data, what)  # the walk is needed only when a string could hold one, or nesting is deep
    return data


def _where(path: list[str | int], what: str) -> str:
    if not path:
        return what
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check(data: Any, what: str = "the request body") -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and strings no store can keep (iterative:
    safe on any depth)."""
    stack: list[tuple[Any, list[str | int], int]] = [(data, [], 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if problem := unstorable_problem(value, _where(path, what)):
                raise PayloadError(problem)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise PayloadError(
                    f"{what} is nested too deeply (at most {MAX_DEPTH} levels)", hint=f"at {_where(path, what)[:120]}"
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (problem := unstorable_problem(key, f"a key of {_where(path, what)}")):
                    raise PayloadError(problem)
                stack.append((item, [*path, key], depth + 1))
        elif isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"{_where(path, what)} must be a finite number")
