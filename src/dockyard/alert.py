"""An alert: what dockyard tells people, whatever it is about and whichever channel carries it.

Producers (run events, source freshness transitions, data monitors, slowdowns, the daily
digest, ``dockyard notify test``) build an :class:`Alert`; :mod:`dockyard.app.alerts` routes it
to the configured channels under the no-storm rules; each channel of :mod:`dockyard.channels`
renders it (Slack Block Kit, a Teams Adaptive Card, an email, a PagerDuty Events v2 event, a
signed webhook). An alert holds no secret: messages are scrubbed before they are stored, and
channel credentials are not part of it. See docs/alerts.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from dockyard import clock

MAX_ITEMS = 20  # items (failed nodes, stale sources...) carried by one alert
MAX_ITEM_MESSAGE_CHARS = 500  # of each item's message: its first lines, bounded
MAX_ITEM_MESSAGE_LINES = 6


class AlertKind(StrEnum):
    RUN = "run"  # a run started, succeeded, failed... (events: started, succeeded, warning,
    #              failed, cancelled, timed_out, resolved)
    FRESHNESS = "freshness"  # a source's freshness changed status (events: pass, warn, error)
    MONITOR = "monitor"  # a data monitor changed state (events: alert, resolved)
    SLOWDOWN = "slowdown"  # a model ran k times slower than its median (event: slow, resolved)
    DIGEST = "digest"  # the daily digest (event: digest)
    TEST = "test"  # `dockyard notify test` (event: test)


class Severity(StrEnum):
    OK = "ok"  # a success, a resolve
    INFO = "info"  # started, a digest, a test
    WARNING = "warning"  # warnings, a failure that will be retried, freshness warn
    CRITICAL = "critical"  # a final failure, freshness error, a monitor alert


def first_lines(
    text: str | None, *, lines: int = MAX_ITEM_MESSAGE_LINES, chars: int = MAX_ITEM_MESSAGE_CHARS
) -> str | None:
    """The first ``lines`` lines of ``text``, at most ``chars`` characters ("…" when cut)."""
    if text is None:
        return None
    kept = text.strip().splitlines()
    out = "\n".join(kept[:lines])
    cut = len(kept) > lines
    if len(out) > chars:
        out, cut = out[: chars - 1], True
    return out + "…" if cut else out


@dataclass(frozen=True)
class AlertItem:
    """One thing an alert lists: a failed node, a stale source, a failing monitor, a slow model."""

    name: str
    status: str
    message: str | None = None  # bounded with first_lines() by the producer
    unique_id: str | None = None


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    event: str  # see AlertKind
    #: what the alert is about: the no-storm and resolve key, e.g. "job:<name>@<env>",
    #: "source:<unique_id>@<env>", "monitor:<name>@<env>", "model:<unique_id>@<env>"
    subject: str
    #: idempotency: the same alert built twice (an event delivered twice) is sent once per channel
    key: str
    title: str  # one line, e.g. "Daily Production Run failed in prod"
    severity: Severity
    text: str = ""  # a short paragraph (retry state, what changed)
    facts: tuple[tuple[str, str], ...] = ()  # ("Job", ...), ("Environment", ...), ("Trigger", ...)
    items: tuple[AlertItem, ...] = ()  # at most MAX_ITEMS
    items_total: int = 0  # how many there were in all
    url: str | None = None  # a link to the run (server.public_url), when known
    job: str | None = None
    environment: str | None = None
    run_id: int | None = None
    #: False for a failure that will be retried: shown, never paged as final
    final: bool = True
    #: True when this closes the open incident of ``subject`` (PagerDuty resolve)
    resolves: bool = False
    #: the run event's payload (dockyard.events.RunPayload.to_dict()) for run alerts: the
    #: generic webhook builds dbt Cloud's webhook body from it
    run: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=clock.now)

    @property
    def dedup_key(self) -> str:
        """A stable key per subject (PagerDuty's ``dedup_key``: trigger and resolve share it)."""
        return "dockyard-" + hashlib.sha256(self.subject.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["severity"] = self.severity.value
        data["created_at"] = self.created_at.isoformat()
        data["facts"] = [list(f) for f in self.facts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        data = dict(data)
        data["kind"] = AlertKind(data["kind"])
        data["severity"] = Severity(data["severity"])
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["facts"] = tuple(tuple(f) for f in data.get("facts") or ())
        data["items"] = tuple(AlertItem(**i) for i in data.get("items") or ())
        return cls(**data)
