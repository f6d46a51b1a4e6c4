"""operator sessions kept on the server, so signing out (or a reset) ends them at once

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cookies signed before this have no row: their operators sign in once more.
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("address", sa.String(length=64), server_default="", nullable=False),
        sa.Column("user_agent", sa.String(length=200), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_operator_sessions_operator", "operator_sessions", ["operator_id"])
    op.create_index("ix_operator_sessions_expires", "operator_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_operator_sessions_expires", table_name="operator_sessions")
    op.drop_index("ix_operator_sessions_operator", table_name="operator_sessions")
    op.drop_table("operator_sessions")
