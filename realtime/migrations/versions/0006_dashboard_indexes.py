"""index teaser messages by site and time for the dashboard

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_teaser_messages_site_created", "teaser_messages", ["site_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_teaser_messages_site_created", table_name="teaser_messages")
