"""visitor sessions and context-aware teasers

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "visitor_sessions",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("score", sa.Integer(), server_default="0", nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "session_id"),
    )
    op.create_index("ix_visitor_sessions_last_seen", "visitor_sessions", ["site_id", "last_seen"])
    with op.batch_alter_table("teaser_messages") as batch:
        batch.add_column(sa.Column("only_on_path", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teaser_messages") as batch:
        batch.drop_column("only_on_path")
    op.drop_index("ix_visitor_sessions_last_seen", table_name="visitor_sessions")
    op.drop_table("visitor_sessions")
