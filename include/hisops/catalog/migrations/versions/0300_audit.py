"""audit trail: hash chain, source and reason, monthly exports; security baselines

Revision ID: 0300_audit
Revises: 0400_tuning
Create Date: 2026-12-01

Rows written before this revision keep ``seq``/``hash`` NULL (they were never chained);
``hisops audit verify`` reports them and refuses any unchained row after the first chained one.
Self-contained on purpose (a migration is history).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0300_audit"
down_revision = "0400_tuning"
branch_labels = None
depends_on = None

S = "hisops"
TS = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def _chain_columns() -> None:
    for name, type_ in (
        ("seq", sa.BigInteger),
        ("source", sa.Text),
        ("reason", sa.Text),
        ("prev_hash", sa.Text),
        ("hash", sa.Text),
    ):
        op.add_column("audit_event", sa.Column(name, type_), schema=S)
    op.create_index("uq_audit_event_seq", "audit_event", ["seq"], unique=True, schema=S)
    op.create_index("ix_audit_event_action_at", "audit_event", ["action", "at"], schema=S)


def _audit_export() -> None:
    op.create_table(
        "audit_export",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("first_seq", sa.BigInteger),
        sa.Column("last_seq", sa.BigInteger),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.Text),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("file_sha256", sa.Text, nullable=False),
        sa.Column("chain_ok", sa.Boolean, nullable=False),
        sa.Column("exported_at", TS, nullable=False, server_default=NOW),
        sa.Column("exported_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_export"),
        schema=S,
    )
    op.create_index("ix_audit_export_period_end", "audit_export", ["period_end"], schema=S)


def _security_baseline() -> None:
    op.create_table(
        "security_baseline",
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("baseline", JSONB, nullable=False),
        sa.Column("accepted_at", TS, nullable=False, server_default=NOW),
        sa.Column("accepted_by", sa.Text, nullable=False),
        sa.Column("drift", JSONB),
        sa.Column("drift_since", TS),
        sa.Column("checked_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("target_id", "item", name="pk_security_baseline"),
        schema=S,
    )


def upgrade() -> None:
    _chain_columns()
    _audit_export()
    _security_baseline()


def downgrade() -> None:
    op.drop_table("security_baseline", schema=S)
    op.drop_table("audit_export", schema=S)
    op.drop_index("ix_audit_event_action_at", "audit_event", schema=S)
    op.drop_index("uq_audit_event_seq", "audit_event", schema=S)
    for name in ("hash", "prev_hash", "reason", "source", "seq"):
        op.drop_column("audit_event", name, schema=S)
