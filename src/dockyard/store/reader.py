"""The read-only view of the store (for the API, a future UI and monitors)."""

from __future__ import annotations

from dockyard.store.base import Database
from dockyard.store.freshness import FreshnessReader
from dockyard.store.jobs import JobReader
from dockyard.store.metrics import Metrics
from dockyard.store.monitors import MonitorReader
from dockyard.store.notifications import NotificationReader
from dockyard.store.outbox import OutboxReader
from dockyard.store.run_pages import RunPageReader
from dockyard.store.runs import RunReader
from dockyard.store.stats import Stats


class StoreReader:
    """Only the reading methods of runs, jobs, stats and the outbox, over a store's database.

    Its repositories are read-only classes (:class:`RunReader`, :class:`JobReader`,
    :class:`Stats`, :class:`OutboxReader`): nothing written can be reached through it.
    """

    def __init__(self, db: Database):
        self.runs = RunReader(db)
        self.jobs = JobReader(db)
        self.stats = Stats(db)
        self.outbox = OutboxReader(db)
        self.metrics = Metrics(db)
        self.freshness = FreshnessReader(db)  # source freshness history
        self.monitors = MonitorReader(db)  # data monitors: measurements and state
        self.notifications = NotificationReader(db)  # the alert delivery log
        self.run_pages = RunPageReader(db)  # the web UI's runs list, run and model pages
        self._db = db

    @property
    def url(self) -> str:
        return self._db.url

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def __repr__(self) -> str:
        return f"StoreReader({self.url!r})"
