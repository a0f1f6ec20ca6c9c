"""What every channel renders the same way: clean text, the severity's mark, "and N more", the link."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit

from dockyard.alert import Alert, AlertItem, AlertKind, Severity
from dockyard.text import CONTROL

EMOJI = {
    Severity.CRITICAL: "\U0001f534",  # red circle
    Severity.WARNING: "\U0001f7e0",  # orange circle
    Severity.INFO: "\U0001f535",  # blue circle
    Severity.OK: "\u2705",  # check mark
}
#: for formats with a colour (email's bar, Teams' TextBlock colours map in msteams)
COLOUR = {
    Severity.CRITICAL: "#d1242f",
    Severity.WARNING: "#d4a72c",
    Severity.INFO: "#0969da",
    Severity.OK: "#1a7f37",
}
MAX_URL_CHARS = 2000
#: terminal escape sequences (dbt's coloured log lines) and control characters but newline and tab
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(value: object) -> str:
    """``value`` as text without terminal escapes, control characters or bidi overrides
    (what a dbt error message may carry), newlines and tabs kept."""
    return _ESCAPES.sub("", str(value)).replace("\r\n", "\n")


def cleaned(alert: Alert) -> Alert:
    """``alert`` with :func:`plain` texts: what the chat and mail channels render."""
    return replace(
        alert,
        title=plain(alert.title),
        text=plain(alert.text),
        facts=tuple((plain(k), plain(v)) for k, v in alert.facts),
        items=tuple(
            AlertItem(plain(i.name), plain(i.status), None if i.message is None else plain(i.message), i.unique_id)
            for i in alert.items
        ),
    )


def mark(alert: Alert) -> str:
    """The emoji of the alert's severity (a resolve is always the check mark)."""
    return EMOJI[Severity.OK] if alert.resolves else EMOJI[alert.severity]


def more(alert: Alert) -> str | None:
    """ "and N more" when the alert carries fewer items than there were."""
    hidden = max(alert.items_total - len(alert.items), 0)
    if not hidden:
        return None
    noun = {AlertKind.FRESHNESS: "source", AlertKind.MONITOR: "monitor", AlertKind.SLOWDOWN: "model"}.get(
        alert.kind, "node"
    )
    return f"and {hidden} more {noun}{'s' if hidden != 1 else ''}"


def link(alert: Alert) -> str | None:
    """The alert's URL if it is a plain http(s) URL a button may carry, else None."""
    url = alert.url
    if not url or len(url) > MAX_URL_CHARS or CONTROL.search(url) or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def link_text(alert: Alert) -> str:
    return "View run" if alert.run_id is not None else "Open dockyard"


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters ("…" when cut)."""
    return value if len(value) <= limit else value[: max(limit - 1, 0)] + "…"
