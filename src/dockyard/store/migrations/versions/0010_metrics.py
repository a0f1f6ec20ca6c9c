"""Run metrics, costs and warehouse history (issue 10)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
MODEL_BUCKETS = 12  # buckets of the model duration histogram (tables.MODEL_BUCKETS)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_index("ix_node_results_unique_id_run_id", "node_results", ["unique_id", "run_id"])
    op.create_table(
        "model_slowdowns",
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("unique_id", sa.String(512), nullable=False),
        sa.Column("slow", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("ratio", sa.Float, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("environment", "unique_id", name="pk_model_slowdowns"),
    )
    op.create_table(
        "history_writes",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("rows", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("written_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_history_writes"),
    )
    op.create_index("ix_history_writes_state_next_attempt_at", "history_writes", ["state", "next_attempt_at"])
    op.create_table(
        "digests",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("lease_until", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("queued", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_digests"),
    )
    op.create_table(
        "model_durations",
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("unique_id", sa.String(512), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("sum", sa.Float, nullable=False, server_default=sa.text("0")),
        *[
            sa.Column(f"b{i:02d}", sa.BigInteger, nullable=False, server_default=sa.text("0"))
            for i in range(MODEL_BUCKETS)
        ],
        sa.Column("last_run_id", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("environment", "unique_id", name="pk_model_durations"),
    )
    op.create_index("ix_model_durations_last_run_id", "model_durations", ["last_run_id"])
    op.create_table(
        "counted_runs",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("counted_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_counted_runs"),
    )


def downgrade() -> None:
    op.drop_table("counted_runs")
    op.drop_index("ix_model_durations_last_run_id", table_name="model_durations")
    op.drop_table("model_durations")
    op.drop_table("digests")
    op.drop_index("ix_history_writes_state_next_attempt_at", table_name="history_writes")
    op.drop_table("history_writes")
    op.drop_table("model_slowdowns")
    op.drop_index("ix_node_results_unique_id_run_id", table_name="node_results")
