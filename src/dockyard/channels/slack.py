"""Slack: an incoming webhook message in Block Kit, with a fallback ``text``.

The message (:func:`payload`) is a header (the severity's emoji and the title), the alert's
text, its facts as a two-column ``fields`` section, one section per item (name, status and
the first lines of its message in a code block), "and N more", and a button to ``alert.url``.
Every mrkdwn string is escaped as Slack asks (``&``, ``<``, ``>``: so no ``<!channel>`` or
link can be smuggled in through a node's error message), a code block cannot be closed from
inside it, and Slack's limits hold: a header of 150 characters, a section's text of 3,000,
10 fields of 2,000, at most 50 blocks.

Slack answers 200 ``ok``; 400 (``invalid_payload``), 403, 404 and 410 (the channel or the
webhook is gone) are final; 429 and 5xx are retried.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dockyard.alert import Alert
from dockyard.channels import http, style

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000
MAX_FALLBACK_CHARS = 3000
MAX_BUTTON_CHARS = 75

_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def escape(value: str) -> str:
    """``value`` for a mrkdwn string: ``&``, ``<`` and ``>`` as entities."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(value: str, limit: int = MAX_SECTION_CHARS) -> str:
    """``value`` escaped and cut to ``limit`` characters without splitting an entity."""
    out = escape(value)
    if len(out) <= limit:
        return out
    return _ENTITY_TAIL.sub("", out[: limit - 1]) + "…"


def _code(value: str, limit: int) -> str:
    # a message cannot close the code block it is shown in
    body = mrkdwn(value.replace("```", "'''"), limit - 8)
    return f"```\n{body}\n```"


def _fields(facts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    fields = []
    for name, value in facts[:MAX_FIELDS]:
        head = f"*{mrkdwn(str(name), 200)}*\n"
        fields.append({"type": "mrkdwn", "text": head + mrkdwn(str(value), MAX_FIELD_CHARS - len(head))})
    return fields


def _item(item) -> dict[str, Any]:
    head = f"*{mrkdwn(item.name, 500)}*  {mrkdwn(item.status, 100)}"
    text = head
    if item.message:
        text += "\n" + _code(item.message, MAX_SECTION_CHARS - len(head) - 1)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def fallback(alert: Alert) -> str:
    """The ``text`` of the message: notifications and clients without blocks show it."""
    parts = [f"{style.mark(alert)} {alert.title}"]
    if alert.text:
        parts.append(alert.text)
    return mrkdwn("\n".join(parts), MAX_FALLBACK_CHARS)


def payload(alert: Alert) -> dict[str, Any]:
    """The webhook's JSON body for ``alert`` (see the module doc)."""
    alert = style.cleaned(alert)
    title = style.clip(f"{style.mark(alert)} {alert.title}", MAX_HEADER_CHARS)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}}]
    if alert.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(alert.text)}})
    if alert.facts:
        blocks.append({"type": "section", "fields": _fields(alert.facts)})
    tail: list[dict[str, Any]] = []
    more = style.more(alert)
    url = style.link(alert)
    if url:
        button = {"type": "plain_text", "text": style.link_text(alert)[:MAX_BUTTON_CHARS]}
        tail.append({"type": "actions", "elements": [{"type": "button", "text": button, "url": url}]})
    items = list(alert.items)
    room = MAX_BLOCKS - len(blocks) - len(tail) - 2  # the divider and "and N more"
    shown = items[:room]
    hidden = len(items) - len(shown)
    if shown:
        blocks.append({"type": "divider"})
        blocks += [_item(i) for i in shown]
    if hidden:
        total = max(alert.items_total, len(items)) - len(shown)
        more = f"and {total} more"
    if more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn(more, 200)}]})
    return {"text": fallback(alert), "blocks": blocks + tail}


def send(webhook_url: str, alert: Alert, *, timeout: float, allow_hosts: Sequence[str] = ()) -> str:
    """Post ``alert`` to the incoming webhook; returns the status ("200")."""
    answer = http.post_json(
        webhook_url,
        payload(alert),
        what="slack webhook",
        timeout=timeout,
        allow_hosts=allow_hosts,
    )
    return str(answer.status)
