"""The run store (SQLAlchemy Core + Alembic) on SQLite or PostgreSQL."""

from dockyard.store.engine import default_url, make_engine
from dockyard.store.records import StoredRun
from dockyard.store.store import Store

__all__ = ["Store", "StoredRun", "default_url", "make_engine"]
