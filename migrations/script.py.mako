"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from alembic import op

from migrations.sqlrun import apply_schema_step

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    apply_schema_step(op.get_bind(), "NNNN_name")  # the sql/schema step this revision applies


def downgrade() -> None:
    raise NotImplementedError("schema steps are not reversed one by one; downgrade to base removes everything")
