"""one-time sign-in links for the operators of a development server

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_sign_in_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_operator_sign_in_links_expires", "operator_sign_in_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_operator_sign_in_links_expires", table_name="operator_sign_in_links")
    op.drop_table("operator_sign_in_links")
