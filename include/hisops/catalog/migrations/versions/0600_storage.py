"""shared storage locations and their marker ids

Revision ID: 0600_storage
Revises: 0100_backup_tiers
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0600_storage"
down_revision = "0100_backup_tiers"
branch_labels = None
depends_on = None

S = "hisops"


def upgrade() -> None:
    op.create_table(
        "storage_location",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("storage_id", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("created_by", sa.Text),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("storage_location", schema=S)
