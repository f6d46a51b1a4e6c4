"""an event whose trigger fired for a session in the holdout says so

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_events_internal",
        sa.Column("held_out", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_events_internal") as table:
        table.drop_column("held_out")
