"""index only the messages still waiting, by session

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PENDING = sa.text("consumed_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_teaser_messages_pending",
        "teaser_messages",
        ["site_id", "session_id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.drop_index("ix_teaser_messages_session", table_name="teaser_messages")


def downgrade() -> None:
    op.create_index(
        "ix_teaser_messages_session", "teaser_messages", ["site_id", "session_id", "consumed_at"]
    )
    op.drop_index("ix_teaser_messages_pending", table_name="teaser_messages")
