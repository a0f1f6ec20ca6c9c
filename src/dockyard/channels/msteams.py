"""Microsoft Teams: a Workflows webhook ("When a Teams webhook request is received") message
carrying one Adaptive Card.

The body (:func:`payload`) is ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <card>}]}``; the card (version 1.4,
full width) holds the title in the severity's colour (Attention, Warning, Accent, Good), the
alert's text, its facts as a ``FactSet``, each item's name and status and the first lines of
its message in a monospace block, "and N more", and an ``Action.OpenUrl`` to ``alert.url``.
Adaptive Cards render a markdown subset in ``TextBlock``: what comes from dbt or users is
backslash-escaped (``\\``, ``*``, ``_``, ``[``, ``]``: emphasis and links), so a message cannot
make a link or hide text, and its line breaks are kept (markdown needs a blank line for one).
Teams refuses messages over about 28 KB: items are dropped (into "and N more") until the
body is under :data:`MAX_BODY_BYTES`.

A Workflows webhook answers 202 Accepted; 400 is final, 429 and 5xx are retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from dockyard.alert import Alert, AlertItem, Severity
from dockyard.channels import http, style

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"
MAX_BODY_BYTES = 24_000
MAX_TEXT_CHARS = 2000
MAX_FACTS = 20
COLOUR = {
    Severity.CRITICAL: "Attention",
    Severity.WARNING: "Warning",
    Severity.INFO: "Accent",
    Severity.OK: "Good",
}

_MARKDOWN = re.compile(r"([\\*_\[\]])")


def escape(value: str) -> str:
    """``value`` for a TextBlock: the markdown characters Teams acts on, backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", value)


def _text(value: str, limit: int = MAX_TEXT_CHARS, **extra: Any) -> dict[str, Any]:
    shown = escape(style.clip(value, limit)).replace("\r\n", "\n").replace("\n", "\n\n")
    return {"type": "TextBlock", "text": shown, "wrap": True, **extra}


def _item(item: AlertItem) -> list[dict[str, Any]]:
    out = [_text(f"{item.name} \u2014 {item.status}", 500, weight="Bolder", spacing="Medium")]
    if item.message:
        out.append(_text(item.message, 1000, fontType="Monospace", spacing="Small", isSubtle=True))
    return out


def card(alert: Alert, items: Sequence[AlertItem] | None = None) -> dict[str, Any]:
    """The Adaptive Card of ``alert`` (``items``: the ones to show, default all)."""
    items = alert.items if items is None else items
    colour = COLOUR[Severity.OK if alert.resolves else alert.severity]
    title = f"{style.mark(alert)} {alert.title}"
    body: list[dict[str, Any]] = [_text(title, 300, size="Large", weight="Bolder", color=colour, style="heading")]
    if alert.text:
        body.append(_text(alert.text))
    if alert.facts:
        facts = [
            {"title": escape(style.clip(str(k), 100)), "value": escape(style.clip(str(v), 500))}
            for k, v in alert.facts[:MAX_FACTS]
        ]
        body.append({"type": "FactSet", "facts": facts})
    for item in items:
        body += _item(item)
    hidden = max(alert.items_total, len(alert.items)) - len(items)
    if hidden > 0:
        more = style.more(alert) if len(items) == len(alert.items) else f"and {hidden} more"
        body.append(_text(more or f"and {hidden} more", 200, isSubtle=True, spacing="Medium"))
    content: dict[str, Any] = {
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    url = style.link(alert)
    if url:
        content["actions"] = [{"type": "Action.OpenUrl", "title": style.link_text(alert), "url": url}]
    return content


def _message(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None, "content": content}]}


def size(message: dict[str, Any]) -> int:
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def payload(alert: Alert) -> dict[str, Any]:
    """The webhook's JSON body for ``alert`` (see the module doc), under :data:`MAX_BODY_BYTES`."""
    alert = style.cleaned(alert)
    items = list(alert.items)
    message = _message(card(alert, items))
    while items and size(message) > MAX_BODY_BYTES:
        items.pop()
        message = _message(card(alert, items))
    return message


def send(webhook_url: str, alert: Alert, *, timeout: float, allow_hosts: Sequence[str] = ()) -> str:
    """Post ``alert`` to the Workflows webhook; returns the status ("202")."""
    answer = http.post_json(
        webhook_url, payload(alert), what="msteams webhook", timeout=timeout, allow_hosts=allow_hosts
    )
    return str(answer.status)
