"""change control steps, KPI reports, monthly evidence packs

Revision ID: 0700_change_kpi
Revises: 0500_cleanup
Create Date: 2026-12-01

- ``change_record`` gains ``requested_at`` and what change control (第十条) needs to be queried:
  ``kind`` (sql, pg_config, package, config_file), ``targets`` (database/host ids it touches — the
  KPI report excludes their checks while the change ran), ``dag_run_id``, ``failed_at`` (first
  failed verification; DORA's recovery time runs from here to ``finished_at`` of a reverted change)
  and ``incident_id``.
- ``change_step``: one row per step of a change (request, assessment, backup, approval, apply,
  verify, revert, verify_after_revert) with its typed result.
- ``kpi_report``: every 运维考核月报 written (period, file, checksum, headline figures).
- ``ix_finding_availability``: partial index of the reachability/HTTP-status findings, the KPI
  report's availability samples (a few percent of all findings).
- ``evidence_pack``: every monthly 等保 evidence archive (month, file, SHA-256, item list).

Self-contained on purpose (history does not follow later edits of ``hisops.catalog.tables``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0700_change_kpi"
down_revision = "0500_cleanup"
branch_labels = None
depends_on = None

S = "hisops"
TS = sa.DateTime(timezone=True)
NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")


def _change_columns() -> None:
    op.add_column(
        "change_record", sa.Column("requested_at", TS, nullable=False, server_default=NOW), schema=S
    )
    op.add_column("change_record", sa.Column("kind", sa.Text), schema=S)
    op.add_column(
        "change_record",
        sa.Column(
            "targets", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")
        ),
        schema=S,
    )
    op.add_column("change_record", sa.Column("dag_run_id", sa.Text), schema=S)
    op.add_column("change_record", sa.Column("failed_at", TS), schema=S)
    op.add_column("change_record", sa.Column("incident_id", sa.BigInteger), schema=S)
    op.create_foreign_key(
        "fk_change_record_incident_id",
        "change_record",
        "incident",
        ["incident_id"],
        ["id"],
        source_schema=S,
        referent_schema=S,
        ondelete="SET NULL",
    )
    op.create_index("ix_change_record_finished_at", "change_record", ["finished_at"], schema=S)


def _change_step() -> None:
    op.create_table(
        "change_step",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("change_id", sa.BigInteger, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.PrimaryKeyConstraint("id", name="pk_change_step"),
        sa.ForeignKeyConstraint(
            ["change_id"],
            [f"{S}.change_record.id"],
            ondelete="CASCADE",
            name="fk_change_step_change_id",
        ),
        schema=S,
    )
    op.create_index("ix_change_step_change_id", "change_step", ["change_id"], schema=S)


def _kpi_report() -> None:
    op.create_table(
        "kpi_report",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("generated_at", TS, nullable=False, server_default=NOW),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("summary", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("dag_run_id", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_report"),
        schema=S,
    )
    op.create_index("ix_kpi_report_period_start", "kpi_report", ["period_start"], schema=S)


def _evidence_pack() -> None:
    op.create_table(
        "evidence_pack",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("items", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("dag_run_id", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_pack"),
        schema=S,
    )
    op.create_index("ix_evidence_pack_month", "evidence_pack", ["month"], schema=S)


def _availability_index() -> None:
    op.create_index(
        "ix_finding_availability",
        "finding",
        ["observed_at"],
        schema=S,
        postgresql_where=sa.text(
            "check_id IN ('database.reachable', 'host.reachable', 'http.status')"
        ),
    )


def upgrade() -> None:
    _availability_index()
    _change_columns()
    _change_step()
    _kpi_report()
    _evidence_pack()


def downgrade() -> None:
    op.drop_index("ix_finding_availability", "finding", schema=S)
    for table in ("evidence_pack", "kpi_report", "change_step"):
        op.drop_table(table, schema=S)
    op.drop_index("ix_change_record_finished_at", "change_record", schema=S)
    op.drop_constraint(
        "fk_change_record_incident_id", "change_record", type_="foreignkey", schema=S
    )
    for column in ("incident_id", "failed_at", "dag_run_id", "targets", "kind", "requested_at"):
        op.drop_column("change_record", column, schema=S)
