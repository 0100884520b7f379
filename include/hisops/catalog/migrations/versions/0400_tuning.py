"""tuning: statement snapshots, index/maintenance proposals, maintenance run links

Revision ID: 0400_tuning
Revises: 0200_inspection
Create Date: 2026-12-01

Self-contained on purpose: a migration is history and must not follow later edits of
``hisops.catalog.tables``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0400_tuning"
down_revision = "0200_inspection"
branch_labels = None
depends_on = None

S = "hisops"
TS = sa.DateTime(timezone=True)
NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")
PROPOSAL_STATES = "state IN ('proposed', 'approved', 'applied', 'measured', 'rejected')"


def upgrade() -> None:
    op.create_table(
        "statement_snapshot",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("database_id", sa.Text, nullable=False),
        sa.Column("taken_at", TS, nullable=False, server_default=NOW),
        sa.Column("stats_reset", TS),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("statements", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.PrimaryKeyConstraint("id", name="pk_statement_snapshot"),
        schema=S,
    )
    op.create_index(
        "ix_statement_snapshot_database_id_taken_at",
        "statement_snapshot",
        ["database_id", "taken_at"],
        schema=S,
    )
    op.create_table(
        "tuning_proposal",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("database_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("object_name", sa.Text, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="proposed"),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", TS),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("measured", JSONB),
        sa.PrimaryKeyConstraint("id", name="pk_tuning_proposal"),
        sa.CheckConstraint(PROPOSAL_STATES, name="ck_tuning_proposal_state"),
        schema=S,
    )
    op.create_index(
        "ix_tuning_proposal_database_id_state",
        "tuning_proposal",
        ["database_id", "state"],
        schema=S,
    )
    op.create_index(
        "uq_tuning_proposal_open",
        "tuning_proposal",
        ["database_id", "kind", "definition"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("state IN ('proposed', 'approved')"),
    )
    op.add_column("maintenance_operation", sa.Column("proposal_id", sa.BigInteger), schema=S)
    op.create_foreign_key(
        "fk_maintenance_operation_proposal_id",
        "maintenance_operation",
        "tuning_proposal",
        ["proposal_id"],
        ["id"],
        source_schema=S,
        referent_schema=S,
    )


def downgrade() -> None:
    op.drop_constraint("fk_maintenance_operation_proposal_id", "maintenance_operation", schema=S)
    op.drop_column("maintenance_operation", "proposal_id", schema=S)
    op.drop_table("tuning_proposal", schema=S)
    op.drop_table("statement_snapshot", schema=S)
