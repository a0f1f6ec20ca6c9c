"""Alembic environment for the run store; driven by :func:`dockyard.store.migrations.upgrade`.

The caller passes an open connection (already inside a transaction) through
``config.attributes["connection"]``; there is no alembic.ini and no offline mode.
"""

from alembic import context

from dockyard.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("dockyard migrations run programmatically: use dockyard.store.Store(url).migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    transactional_ddl=True,
    render_as_batch=True,  # SQLite needs batch mode for ALTER in later revisions
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
