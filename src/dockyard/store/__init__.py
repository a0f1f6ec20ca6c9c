"""The run store (SQLAlchemy Core + Alembic) on SQLite or PostgreSQL."""

from dockyard.store.engine import default_url, make_engine
from dockyard.store.ownership import HeartbeatResult, Reaped
from dockyard.store.queue import Claim, EnqueueResult
from dockyard.store.reader import StoreReader
from dockyard.store.records import StoredRun
from dockyard.store.store import Store

__all__ = [
    "Claim",
    "EnqueueResult",
    "HeartbeatResult",
    "Reaped",
    "Store",
    "StoreReader",
    "StoredRun",
    "default_url",
    "make_engine",
]
