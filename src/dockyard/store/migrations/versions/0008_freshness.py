"""Source freshness history (issue 10)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "source_freshness",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("job", sa.String(255), nullable=True),
        sa.Column("unique_id", sa.String(512), nullable=False),
        sa.Column("source_name", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_status", sa.String(16), nullable=True),
        sa.Column("max_loaded_at", TS, nullable=True),
        sa.Column("snapshotted_at", TS, nullable=True),
        sa.Column("age_seconds", sa.Float, nullable=True),
        sa.Column("warn_after", JSON, nullable=True),
        sa.Column("error_after", JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("checked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_source_freshness"),
        sa.UniqueConstraint(
            "run_id", "step_index", "unique_id", name="uq_source_freshness_run_id_step_index_unique_id"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_source_freshness_environment_unique_id_checked_at",
        "source_freshness",
        ["environment", "unique_id", "checked_at"],
    )
    op.create_table(
        "source_freshness_latest",
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("unique_id", sa.String(512), nullable=False),
        sa.Column("freshness_id", sa.Integer, nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("environment", "unique_id", name="pk_source_freshness_latest"),
    )


def downgrade() -> None:
    op.drop_table("source_freshness_latest")
    op.drop_index("ix_source_freshness_environment_unique_id_checked_at", table_name="source_freshness")
    op.drop_table("source_freshness")
