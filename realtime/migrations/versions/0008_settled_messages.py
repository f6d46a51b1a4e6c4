"""split the per-session index: unsettled messages in a small one, settled ones in another

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UNSETTLED = sa.text("settled_at IS NULL")
SETTLED = sa.text("settled_at IS NOT NULL")
PENDING = sa.text("consumed_at IS NULL")


def upgrade() -> None:
    op.add_column("teaser_messages", sa.Column("settled_at", sa.BigInteger(), nullable=True))
    # Delivered messages are settled at once; expired ones at the store's first settle.
    op.execute("UPDATE teaser_messages SET settled_at = consumed_at WHERE consumed_at IS NOT NULL")
    op.drop_index("ix_teaser_messages_pending", table_name="teaser_messages")
    op.drop_index("ux_teaser_messages_session_seq", table_name="teaser_messages")
    op.create_index(
        "ix_teaser_messages_unsettled",
        "teaser_messages",
        ["site_id", "session_id"],
        sqlite_where=UNSETTLED,
        postgresql_where=UNSETTLED,
    )
    op.create_index(
        "ux_teaser_messages_session_seq",
        "teaser_messages",
        ["site_id", "session_id", "session_seq"],
        unique=True,
        sqlite_where=SETTLED,
        postgresql_where=SETTLED,
    )


def downgrade() -> None:
    op.drop_index("ux_teaser_messages_session_seq", table_name="teaser_messages")
    op.drop_index("ix_teaser_messages_unsettled", table_name="teaser_messages")
    op.create_index(
        "ux_teaser_messages_session_seq",
        "teaser_messages",
        ["site_id", "session_id", "session_seq"],
        unique=True,
    )
    op.create_index(
        "ix_teaser_messages_pending",
        "teaser_messages",
        ["site_id", "session_id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    with op.batch_alter_table("teaser_messages") as batch:
        batch.drop_column("settled_at")
