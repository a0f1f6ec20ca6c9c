"""The base class of dockyard's built-in event consumers (see :mod:`dockyard.app.consumers`,
which lists them)."""

from __future__ import annotations

from dockyard.plugins import Sink, SinkContext

PREFIX = "dockyard."


class Consumer(Sink):
    """A built-in event consumer: a :class:`dockyard.plugins.Sink` given the App, whose outbox
    cursor is named ``dockyard.<name>``."""

    def __init__(self, app, name: str):
        super().__init__(PREFIX + name, {}, SinkContext(app.loaded.base_dir, app.state_dir, app.loaded.path))
        self.app = app
