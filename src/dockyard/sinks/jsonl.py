"""The JSON-lines event log: one JSON object per event and line, appended (``O_APPEND``).

Options: ``path`` (default ``<state_dir>/events.jsonl``; relative to dockyard.yml's
folder), ``fsync`` (default false: flush each line to disk before the event counts as
delivered). The file is created 0600 and its missing folders 0700, like every state file
(:mod:`dockyard.permissions`). A line is written with one ``write`` on an ``O_APPEND``
descriptor, so lines of several processes never interleave.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dockyard import permissions
from dockyard.events import Event
from dockyard.plugins import Sink, SinkContext


class JsonLinesSink(Sink):
    type = "jsonl"

    def __init__(self, name: str, options: dict[str, Any], context: SinkContext):
        super().__init__(name, options, context)
        unknown = sorted(set(options) - {"path", "fsync"})
        if unknown:
            raise ValueError(f"the jsonl sink has no option {', '.join(map(repr, unknown))} (options: path, fsync)")
        path = options.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ValueError("the jsonl sink's 'path' must be a file path")
        fsync = options.get("fsync", False)
        if not isinstance(fsync, bool):
            raise ValueError("the jsonl sink's 'fsync' must be true or false")
        self.fsync = fsync
        self.path = (
            context.base_dir / Path(path).expanduser() if path is not None else context.state_dir / "events.jsonl"
        )

    def deliver(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), ensure_ascii=False, sort_keys=True, default=str) + "\n"
        if not self.path.parent.is_dir():
            permissions.private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, permissions.FILE_MODE)
        try:
            data = line.encode("utf-8")
            written = os.write(fd, data)
            if written != len(data):  # a full disk: the partial line is ended, the event retried
                os.write(fd, b"\n")
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
