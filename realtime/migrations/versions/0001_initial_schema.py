"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:44:19.913970
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "teaser_messages",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(length=40), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("consumed_at", sa.BigInteger(), nullable=True),
        sa.Column("delivered_via", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("teaser_messages", schema=None) as batch_op:
        batch_op.create_index("ix_teaser_messages_expires", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_teaser_messages_session", ["site_id", "session_id", "consumed_at"], unique=False
        )

    op.create_table(
        "teaser_polls",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("poll_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_transport", sa.String(length=16), server_default="poll", nullable=False),
        sa.PrimaryKeyConstraint("site_id", "session_id"),
    )
    with op.batch_alter_table("teaser_polls", schema=None) as batch_op:
        batch_op.create_index("ix_teaser_polls_last_seen", ["site_id", "last_seen"], unique=False)

    op.create_table(
        "webhook_events_internal",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("score", sa.Integer(), server_default="0", nullable=False),
        sa.Column("ai_triggered", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_events_internal", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_session", ["site_id", "session_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_events_site_created", ["site_id", "created_at"], unique=False)

    op.create_table(
        "site_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("site_keys", schema=None) as batch_op:
        batch_op.create_index("ix_site_keys_site", ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("site_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_site_keys_site")

    op.drop_table("site_keys")
    with op.batch_alter_table("webhook_events_internal", schema=None) as batch_op:
        batch_op.drop_index("ix_events_site_created")
        batch_op.drop_index("ix_events_session")

    op.drop_table("webhook_events_internal")
    with op.batch_alter_table("teaser_polls", schema=None) as batch_op:
        batch_op.drop_index("ix_teaser_polls_last_seen")

    op.drop_table("teaser_polls")
    with op.batch_alter_table("teaser_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_teaser_messages_session")
        batch_op.drop_index("ix_teaser_messages_expires")

    op.drop_table("teaser_messages")
    op.drop_table("sites")
