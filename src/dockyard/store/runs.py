"""The runs repository: runs with their steps, nodes and artifacts.

Reads in :mod:`~dockyard.store.queries` and :mod:`~dockyard.store.search`, writes in
:mod:`~dockyard.store.writes`; :class:`RunReader` has only the reads.
"""

from __future__ import annotations

from dockyard.store.queries import RunQueries
from dockyard.store.search import RunSearchOps
from dockyard.store.writes import RunWrites


class RunReader(RunQueries, RunSearchOps):
    """Reading runs: get, list, count, latest, search, summaries."""


class Runs(RunReader, RunWrites):
    """The runs repository: reads, and the writes of runs, steps, nodes and artifacts."""
