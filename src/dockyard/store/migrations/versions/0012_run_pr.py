"""The pull request of a run as an indexed column (the runs list's ``pr=`` filter, issue 11)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Written by hand; must match ``dockyard.store.tables`` (a test compares them). The backfill
reads the runs' overrides with SQLAlchemy's JSON operators, which compile to
``JSON_EXTRACT`` on SQLite and ``->>`` on PostgreSQL: the first of the pull-request fields
that is set, in the order of ``dockyard.store.tables.PR_OVERRIDE_KEYS`` (copied here: a
migration must not change when the code does).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
PR_KEYS = ("github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id", "non_native_pull_request_id")


def upgrade() -> None:
    op.add_column("runs", sa.Column("pr_number", sa.Integer, nullable=True))
    runs = sa.table("runs", sa.column("overrides", JSON), sa.column("pr_number", sa.Integer))
    first = sa.func.coalesce(*(sa.cast(runs.c.overrides[k].as_string(), sa.Integer) for k in PR_KEYS))
    op.execute(runs.update().where(runs.c.overrides.isnot(None)).values(pr_number=first))
    op.create_index("ix_runs_pr_number_id", "runs", ["pr_number", sa.text("id DESC")])


def downgrade() -> None:
    op.drop_index("ix_runs_pr_number_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pr_number")
