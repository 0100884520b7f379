"""retention cleanup: cleanup runs, steps and files; daily roll-ups of findings and metrics

Revision ID: 0500_cleanup
Revises: 0600_storage
Create Date: 2026-12-01

Self-contained on purpose (a migration is history).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0500_cleanup"
down_revision = "0600_storage"
branch_labels = None
depends_on = None

S = "hisops"
TS = sa.DateTime(timezone=True)
NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")
NUMBER = sa.Numeric()


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False)


def _runs() -> None:
    op.create_table(
        "cleanup_run",
        _id(),
        sa.Column("dag_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("state", sa.Text, nullable=False, server_default="running"),
        sa.Column("report_path", sa.Text),
        sa.Column("summary", JSONB, nullable=False, server_default=EMPTY),
        sa.PrimaryKeyConstraint("id", name="pk_cleanup_run"),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_cleanup_run_dag_id_run_id"),
        schema=S,
    )
    op.create_index("ix_cleanup_run_started_at", "cleanup_run", ["started_at"], schema=S)
    op.create_table(
        "cleanup_step",
        _id(),
        sa.Column("cleanup_run_id", sa.BigInteger, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("files", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_freed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("notes", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("recorded_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_cleanup_step"),
        sa.ForeignKeyConstraint(
            ["cleanup_run_id"],
            [f"{S}.cleanup_run.id"],
            ondelete="CASCADE",
            name="fk_cleanup_step_cleanup_run_id",
        ),
        sa.CheckConstraint(
            "scope IN ('host', 'catalog', 'airflow', 'task_logs')", name="ck_cleanup_step_scope"
        ),
        schema=S,
    )
    op.create_index("ix_cleanup_step_cleanup_run_id", "cleanup_step", ["cleanup_run_id"], schema=S)
    op.create_table(
        "cleanup_file",
        _id(),
        sa.Column("cleanup_run_id", sa.BigInteger, nullable=False),
        sa.Column("host_id", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("mtime", TS, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("bytes_freed", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_cleanup_file"),
        sa.ForeignKeyConstraint(
            ["cleanup_run_id"],
            [f"{S}.cleanup_run.id"],
            ondelete="CASCADE",
            name="fk_cleanup_file_cleanup_run_id",
        ),
        sa.CheckConstraint(
            "outcome IN ('deleted', 'compressed', 'would_delete', 'would_compress', "
            "'skipped', 'failed')",
            name="ck_cleanup_file_outcome",
        ),
        schema=S,
    )
    op.create_index("ix_cleanup_file_cleanup_run_id", "cleanup_file", ["cleanup_run_id"], schema=S)


def _rollups() -> None:
    op.create_table(
        "metric_daily",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("day", "target_id", "metric", name="pk_metric_daily"),
        schema=S,
    )
    op.create_index(
        "ix_metric_daily_target_id_metric_day",
        "metric_daily",
        ["target_id", "metric", "day"],
        schema=S,
    )
    op.create_table(
        "finding_daily",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("target_kind", sa.Text, nullable=False),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("check_id", sa.Text, nullable=False),
        sa.Column("system_id", sa.Text),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("n_ok", sa.BigInteger, nullable=False),
        sa.Column("n_warn", sa.BigInteger, nullable=False),
        sa.Column("n_critical", sa.BigInteger, nullable=False),
        sa.Column("n_check_error", sa.BigInteger, nullable=False),
        sa.Column("value_n", sa.BigInteger, nullable=False),
        sa.Column("value_min", NUMBER),
        sa.Column("value_max", NUMBER),
        sa.Column("value_sum", NUMBER),
        sa.PrimaryKeyConstraint(
            "day", "target_kind", "target_id", "check_id", name="pk_finding_daily"
        ),
        schema=S,
    )
    op.create_index(
        "ix_finding_daily_target_id_check_id_day",
        "finding_daily",
        ["target_id", "check_id", "day"],
        schema=S,
    )
    # keyset order for batched pruning: each batch starts where the previous one ended
    op.create_index(
        "ix_metric_sample_observed_at_id", "metric_sample", ["observed_at", "id"], schema=S
    )
    op.create_index("ix_finding_observed_at_id", "finding", ["observed_at", "id"], schema=S)


def upgrade() -> None:
    _runs()
    _rollups()


def downgrade() -> None:
    op.drop_index("ix_finding_observed_at_id", "finding", schema=S)
    op.drop_index("ix_metric_sample_observed_at_id", "metric_sample", schema=S)
    for table in ("finding_daily", "metric_daily", "cleanup_file", "cleanup_step", "cleanup_run"):
        op.drop_table(table, schema=S)
