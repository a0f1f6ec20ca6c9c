"""The run store: the only API the rest of dockyard uses to persist jobs and runs.

Every write is one short transaction; nothing holds a connection between calls, so
the runner can call ``store.runs.upsert_nodes`` several times a second while the API
and scheduler read and write from other threads or processes.

:class:`Store` is a facade over repositories by noun, each a class in its module that is
given the shared database core (:class:`~dockyard.store.base.Database`: engine,
transactions; fencing in :func:`~dockyard.store.base.fence`) rather than inheriting it:

* ``store.runs`` (:class:`~dockyard.store.runs.Runs`): reads (``queries``, ``search``) and
  writes (``writes``) of runs, steps, nodes and artifacts;
* ``store.queue`` (:class:`~dockyard.store.queue.Queue`): enqueue, claim, cron fires
  (``fires``), completion triggers (``triggers``); it inserts runs through ``store.runs``;
* ``store.leases`` (:class:`~dockyard.store.ownership.Leases`): heartbeats, reap, finish,
  cancel, requeue (``ownership``), the process registry and named leases (``processes``);
* ``store.jobs`` (:class:`~dockyard.store.jobs.Jobs`): environments, config jobs, API jobs
  (``api_jobs``);
* ``store.tokens`` (:class:`~dockyard.store.tokens.Tokens`): API tokens, idempotency keys;
* ``store.stats`` (:class:`~dockyard.store.stats.Stats`): model durations, test results;
* ``store.outbox`` (:class:`~dockyard.store.outbox.Outbox`): run events and sink cursors;
* ``store.commits`` (:class:`~dockyard.store.commits.Commits`): deployed and refused commits.

``store.reader`` (:class:`~dockyard.store.reader.StoreReader`) is the read-only view over the
same database: only the reading methods of runs, jobs, stats and the outbox.
``store.db`` is the core itself (``store.db.write_state()`` for health).
"""

from __future__ import annotations

from dockyard.store.base import Database
from dockyard.store.commits import Commits
from dockyard.store.freshness import Freshness
from dockyard.store.jobs import Jobs
from dockyard.store.metric_state import MetricState
from dockyard.store.metrics import Metrics
from dockyard.store.monitors import Monitors
from dockyard.store.notifications import Notifications
from dockyard.store.outbox import Outbox
from dockyard.store.ownership import HeartbeatResult, Leases, Reaped
from dockyard.store.pr_schemas import PrSchemas
from dockyard.store.queue import Claim, EnqueueResult, Queue
from dockyard.store.reader import StoreReader
from dockyard.store.runs import Runs
from dockyard.store.search import RunSearch
from dockyard.store.stats import Stats
from dockyard.store.tokens import Tokens
from dockyard.store.users import Users
from dockyard.store.webhooks import Webhooks
from dockyard.store.writes import BATCH, RUN_FIELDS, TRANSITION_FIELDS, TRIGGERS

__all__ = [
    "BATCH",
    "RUN_FIELDS",
    "TRANSITION_FIELDS",
    "TRIGGERS",
    "Claim",
    "EnqueueResult",
    "HeartbeatResult",
    "Reaped",
    "RunSearch",
    "Store",
    "StoreReader",
]


class Store:
    """The run store on SQLite or PostgreSQL (``Store(url)``; call :meth:`migrate` first)."""

    def __init__(self, url: str):
        self.db = Database(url)
        self.engine = self.db.engine
        self.runs = Runs(self.db)
        self.queue = Queue(self.db, self.runs)
        self.leases = Leases(self.db)
        self.jobs = Jobs(self.db)
        self.tokens = Tokens(self.db)
        self.stats = Stats(self.db)
        self.outbox = Outbox(self.db)
        self.pr_schemas = PrSchemas(self.db)  # the warehouse schemas of pull-request builds
        self.webhooks = Webhooks(self.db)  # inbound webhook deliveries (de-duplication)
        self.commits = Commits(self.db)  # code from git: deployed and refused commits
        self.freshness = Freshness(self.db)  # source freshness history
        self.notifications = Notifications(self.db)  # alert deliveries and the no-storm state
        self.metrics = Metrics(self.db)  # run metrics, costs, Prometheus (reads)
        self.metric_state = MetricState(self.db)  # slowdowns, warehouse history queue, digests
        self.monitors = Monitors(self.db)  # data monitors: measurements, state, checks
        self.users = Users(self.db)  # the web UI's users and login sessions
        self.reader = StoreReader(self.db)

    @property
    def url(self) -> str:
        """The store URL with any password masked (safe to print or log)."""
        return self.db.url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    __str__ = __repr__

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> bool:
        """Create or upgrade the schema; a no-op (returns False) when up to date."""
        return self.db.migrate()

    def close(self) -> None:
        self.db.close()
