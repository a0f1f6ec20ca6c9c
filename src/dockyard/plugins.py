"""The plugin registry: event sinks are found through the ``dockyard.sinks`` entry points.

Built-in sinks are registered exactly like third-party ones, in ``pyproject.toml``::

    [project.entry-points."dockyard.sinks"]
    jsonl = "dockyard.sinks.jsonl:JsonLinesSink"

A sink is a class deriving from :class:`Sink`: built from its options in ``dockyard.yml``
(``events.sinks[]``), it delivers one :class:`dockyard.events.Event` per :meth:`Sink.deliver`
call and raises on failure (the dispatcher retries with backoff). See docs/events.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar

from dockyard.events import Event

SINK_GROUP = "dockyard.sinks"
_registered: dict[str, type[Sink]] = {}  # register_sink(): in-process, for tests and embedding


@dataclass(frozen=True)
class SinkContext:
    """Where a sink's relative paths and default files go."""

    base_dir: Path  # the folder of dockyard.yml
    state_dir: Path
    config_path: Path | None = None  # dockyard.yml itself (a sink that opens the App: pull_request)


class Sink:
    """The base of every event sink.

    ``type`` is the registry name (the entry point's name); ``name`` identifies the
    configured sink (its delivery cursor), the ``name`` option or else the type. The
    constructor gets the sink's options (every key of its ``events.sinks[]`` entry except
    ``type`` and ``name``) and must not do I/O: configuration checks build sinks too.
    """

    type: ClassVar[str] = ""

    def __init__(self, name: str, options: dict[str, Any], context: SinkContext):
        self.name = name
        self.options = options
        self.context = context

    def deliver(self, event: Event) -> None:  # pragma: no cover - abstract
        """Deliver one event; raise on failure (the event is then retried, with backoff)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sink holds (the dispatcher is stopping)."""


class UnknownSinkError(LookupError):
    def __init__(self, type_: str):
        self.type = type_
        super().__init__(f"unknown event sink type {type_!r}; known types: {', '.join(sink_types()) or 'none'}")


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=SINK_GROUP)}


def sink_types() -> list[str]:
    """The names of every registered sink type, sorted."""
    return sorted({*_entry_points(), *_registered})


def sink_class(type_: str) -> type[Sink]:
    """The sink class registered as ``type_``; raises :class:`UnknownSinkError`."""
    if type_ in _registered:
        return _registered[type_]
    ep = _entry_points().get(type_)
    if ep is None:
        raise UnknownSinkError(type_)
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Sink)):
        raise TypeError(f"entry point {SINK_GROUP}:{type_} ({ep.value}) is not a dockyard.plugins.Sink class")
    return cls


def register_sink(type_: str, cls: type[Sink]) -> None:
    """Register a sink class in this process (what an entry point does for every process)."""
    _registered[type_] = cls


def sink_name(spec: dict[str, Any]) -> str:
    return str(spec.get("name") or spec["type"])


def build_sink(spec: dict[str, Any], context: SinkContext) -> Sink:
    """A sink from its ``events.sinks[]`` entry (``type``, optional ``name``, options);
    raises :class:`UnknownSinkError`, or ``ValueError`` for bad options."""
    cls = sink_class(spec["type"])
    options = {k: v for k, v in spec.items() if k not in ("type", "name")}
    return cls(sink_name(spec), options, context)
