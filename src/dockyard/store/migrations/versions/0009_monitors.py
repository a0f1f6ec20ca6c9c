"""Data monitors: measurements and state (issue 10)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "monitor_measurements",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("measured_at", TS, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("expected", sa.Float, nullable=True),
        sa.Column("lower", sa.Float, nullable=True),
        sa.Column("upper", sa.Float, nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_measurements"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_monitor_measurements_monitor_environment_measured_at",
        "monitor_measurements",
        ["monitor", "environment", "measured_at"],
    )
    op.create_table(
        "monitor_state",
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("last_alert_at", TS, nullable=True),
        sa.Column("measurement_id", sa.Integer, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("monitor", "environment", name="pk_monitor_state"),
    )
    op.create_table(
        "monitor_checks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("monitors", JSON, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("job", sa.String(200), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_checks"),
        sa.UniqueConstraint("key", name="uq_monitor_checks_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_monitor_checks_state_requested_at", "monitor_checks", ["state", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_checks_state_requested_at", table_name="monitor_checks")
    op.drop_table("monitor_checks")
    op.drop_table("monitor_state")
    op.drop_index("ix_monitor_measurements_monitor_environment_measured_at", table_name="monitor_measurements")
    op.drop_table("monitor_measurements")
