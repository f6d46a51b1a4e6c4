"""visitor session tokens that were revoked: each worker keeps the list in memory

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revoked_visitor_sessions",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "session_id"),
    )
    op.create_index("ix_revoked_visitor_sessions_at", "revoked_visitor_sessions", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_revoked_visitor_sessions_at", table_name="revoked_visitor_sessions")
    op.drop_table("revoked_visitor_sessions")
