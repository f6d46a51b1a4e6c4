"""site keys numbered 1, 2, 3… within their site, so `teaser key revoke acme 1` means acme's first

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Each existing key gets its rank among its site's keys, in the order they were made (the
# global id grew with every key of every site). Correlated, so SQLite and PostgreSQL alike.
BACKFILL = """
UPDATE site_keys SET number = (
    SELECT COUNT(*) FROM site_keys AS earlier
    WHERE earlier.site_id = site_keys.site_id AND earlier.id <= site_keys.id
)
"""


def upgrade() -> None:
    with op.batch_alter_table("site_keys") as batch:
        batch.add_column(sa.Column("number", sa.Integer(), nullable=True))
    op.execute(BACKFILL)
    with op.batch_alter_table("site_keys") as batch:
        batch.alter_column("number", existing_type=sa.Integer(), nullable=False)
        batch.drop_index("ix_site_keys_site")
        batch.create_index("ux_site_keys_site_number", ["site_id", "number"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("site_keys") as batch:
        batch.drop_index("ux_site_keys_site_number")
        batch.create_index("ix_site_keys_site", ["site_id"], unique=False)
        batch.drop_column("number")
