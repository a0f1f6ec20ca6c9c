"""The queue: claim/lease columns on runs, fires, schedule_state, processes, leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-08

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

RUN_COLUMNS = (
    ("not_before", TS, {}),
    ("claimed_at", TS, {}),
    ("cancel_requested_at", TS, {}),
    ("coalesced", sa.Integer, {"nullable": False, "server_default": sa.text("0")}),
    ("host", sa.String(255), {}),
    ("pgid", sa.Integer, {}),
    ("idempotency_key", sa.String(255), {}),
)


def upgrade() -> None:
    for name, type_, kw in RUN_COLUMNS:
        op.add_column("runs", sa.Column(name, type_, **{"nullable": True, **kw}))
    op.create_table(
        "fires",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("fire_key", sa.String(255), nullable=False),
        sa.Column("scheduled_for", TS, nullable=True),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fires"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_fires_job_id_jobs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_fires_run_id_runs", ondelete="SET NULL"),
        sa.UniqueConstraint("job_id", "fire_key", name="uq_fires_job_id_fire_key"),
    )
    op.create_index("ix_fires_run_id", "fires", ["run_id"])
    op.create_table(
        "schedule_state",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("last_fire_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_schedule_state"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_schedule_state_job_id_jobs", ondelete="CASCADE"),
    )
    op.create_table(
        "processes",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("stopped_at", TS, nullable=True),
        sa.Column("concurrency", sa.Integer, nullable=True),
        sa.Column("info", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_processes"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    for table in ("leases", "processes", "schedule_state"):
        op.drop_table(table)
    op.drop_index("ix_fires_run_id", table_name="fires")
    op.drop_table("fires")
    with op.batch_alter_table("runs") as batch:
        for name, _, _ in reversed(RUN_COLUMNS):
            batch.drop_column(name)
