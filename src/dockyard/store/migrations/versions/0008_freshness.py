"""Source freshness history (issue 10)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Written by hand; must match ``dockyard.store.tables`` (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
