"""Run events: the outbox and the per-sink delivery cursors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_run_id", "outbox", ["run_id"])
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])
    op.create_table(
        "outbox_cursors",
        sa.Column("sink", sa.String(200), nullable=False),
        sa.Column("last_id", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sink", name="pk_outbox_cursors"),
    )


def downgrade() -> None:
    op.drop_table("outbox_cursors")
    op.drop_index("ix_outbox_created_at", table_name="outbox")
    op.drop_index("ix_outbox_run_id", table_name="outbox")
    op.drop_table("outbox")
