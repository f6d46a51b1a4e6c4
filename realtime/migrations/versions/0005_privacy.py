"""find a person's sessions by e-mail or customer id, for erasure

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("visitor_sessions") as batch:
        batch.add_column(sa.Column("customer_email", sa.String(length=254), nullable=True))
        batch.create_index("ix_visitor_sessions_customer_email", ["customer_email"])
        batch.create_index("ix_visitor_sessions_customer_id", ["customer_id"])


def downgrade() -> None:
    with op.batch_alter_table("visitor_sessions") as batch:
        batch.drop_index("ix_visitor_sessions_customer_id")
        batch.drop_index("ix_visitor_sessions_customer_email")
        batch.drop_column("customer_email")
