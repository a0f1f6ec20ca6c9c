"""dbt's output as dockyard reads it: log lines and structured events, the text line dbt's
console format prints for a JSON event, and line cleaning (ANSI colours, progress bars)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

# dbt's text logger prints these without a timestamp (dbt_common.events.logger.PRINT_EVENT_NAMES).
PRINT_EVENT_NAMES = frozenset({"PrintEvent", "ShowNode", "CompiledNode"})
#: A synthetic event a fork-mode child sends after dbt returns: ``{"paths": {uid: path}}``.
COMPILED_PATHS_EVENT = "DockyardCompiledPaths"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class LogLine:
    """One line of dbt's human-readable console output (no trailing newline)."""

    text: str
    stream: str = "stdout"


@dataclass(frozen=True)
class DbtEvent:
    """One structured dbt event, as the dict of a ``--log-format json`` line."""

    name: str
    payload: dict = field(repr=False)

    @property
    def info(self) -> dict:
        return self.payload.get("info") or {}

    @property
    def data(self) -> dict:
        return self.payload.get("data") or {}


def human_line(event: Mapping) -> str | None:
    """The line dbt's text console format prints for a JSON event (ANSI removed)."""
    info = event.get("info")
    if not isinstance(info, Mapping) or "msg" not in info:
        return None
    msg = str(info.get("msg") or "")
    if info.get("name") in PRINT_EVENT_NAMES:
        text = msg
    else:
        ts = str(info.get("ts") or "")
        hhmmss = ts[11:19] if len(ts) >= 19 else time.strftime("%H:%M:%S", time.gmtime())
        text = f"{hhmmss}  {msg}"
    return strip_ansi(text)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def clean_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    if text.endswith("\r"):
        text = text[:-1]
    if "\r" in text:  # a progress bar redrawn with carriage returns: keep its last state
        parts = [p for p in text.split("\r") if p.strip()]
        text = parts[-1] if parts else ""
    return strip_ansi(text)
