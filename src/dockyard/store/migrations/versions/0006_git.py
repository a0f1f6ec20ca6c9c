"""Code from git, inbound webhooks and pull-request schemas.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "commits",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("fetched_at", TS, nullable=False),
        sa.Column("deployed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_commits"),
        sa.UniqueConstraint("sha", name="uq_commits_sha"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_commits_deployed_at", "commits", ["deployed_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("provider", "delivery_id", name="uq_webhook_deliveries_provider_delivery_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries", ["received_at"])
    op.create_table(
        "pr_schemas",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("pr_number", sa.Integer, nullable=False),
        sa.Column("schema", sa.String(255), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("dropped_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pr_schemas"),
        sa.UniqueConstraint("environment", "pr_number", name="uq_pr_schemas_environment_pr_number"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pr_schemas_state", "pr_schemas", ["state"])


def downgrade() -> None:
    op.drop_index("ix_pr_schemas_state", table_name="pr_schemas")
    op.drop_table("pr_schemas")
    op.drop_index("ix_webhook_deliveries_received_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_commits_deployed_at", table_name="commits")
    op.drop_table("commits")
