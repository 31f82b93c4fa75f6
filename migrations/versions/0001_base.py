"""Base schema: sql/schema/0001_base.sql.

Revision ID: 0001_base
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from migrations.sqlrun import apply_schema_step, uninstall

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_schema_step(op.get_bind(), "0001_base")


def downgrade() -> None:
    # Downgrading the first revision removes everything pgretrieval created (sql/uninstall.sql).
    uninstall(op.get_bind())
