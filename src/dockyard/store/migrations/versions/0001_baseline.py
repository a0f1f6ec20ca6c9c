"""Baseline: environments, jobs, runs, run_steps, node_results, artifacts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("schema", sa.String(200), nullable=True),
        sa.Column("threads", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("name", name="uq_environments_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("name", name="uq_jobs_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job_id", sa.Integer, nullable=True),
        sa.Column("job_name", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("has_warnings", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("trigger", sa.String(32), nullable=False, server_default="manual"),
        sa.Column("cause", sa.Text, nullable=True),
        sa.Column("scheduled_for", TS, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("retry_of", sa.Integer, nullable=True),
        sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("overrides", JSON, nullable=True),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("git_branch", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("queued_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("artifacts_dir", sa.Text, nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("lease_epoch", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_runs_job_id_jobs", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["retry_of"], ["runs.id"], name="fk_runs_retry_of_runs", ondelete="SET NULL"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_job_id_id", "runs", ["job_id", sa.text("id DESC")])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_table(
        "run_steps",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("log_path", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_run_steps"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_steps_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "index", name="uq_run_steps_run_id_index"),
    )
    op.create_table(
        "node_results",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("unique_id", sa.String(512), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("execution_time_s", sa.Float, nullable=True),
        sa.Column("rows_affected", sa.BigInteger, nullable=True),
        sa.Column("adapter_response", JSON, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("compiled_path", sa.Text, nullable=True),
        sa.Column("thread", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_node_results"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_node_results_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "step_index", "unique_id", name="uq_node_results_run_id_step_index_unique_id"),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_artifacts_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "step_index", "name", name="uq_artifacts_run_id_step_index_name"),
    )


def downgrade() -> None:
    for table in ("artifacts", "node_results", "run_steps"):
        op.drop_table(table)
    for index in ("ix_runs_created_at", "ix_runs_job_id_id", "ix_runs_status"):
        op.drop_index(index, table_name="runs")
    for table in ("runs", "jobs", "environments"):
        op.drop_table(table)
