"""per-session sequence numbers and idempotent sends

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teaser_messages") as batch:
        batch.add_column(sa.Column("session_seq", sa.BigInteger(), nullable=True))
        batch.create_index(
            "ux_teaser_messages_session_seq",
            ["site_id", "session_id", "session_seq"],
            unique=True,
        )
    op.create_table(
        "session_counters",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "session_id"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "key"),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("session_counters")
    with op.batch_alter_table("teaser_messages") as batch:
        batch.drop_index("ux_teaser_messages_session_seq")
        batch.drop_column("session_seq")
