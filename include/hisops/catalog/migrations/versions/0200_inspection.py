"""inspection over days: idempotent findings/metrics, log offsets per reader

Revision ID: 0200_inspection
Revises: 0700_change_kpi
Create Date: 2026-12-01

- finding: one row per (inspection run, target, check) — a retried task replaces, never adds.
- metric_sample: the inspection run that took the sample; one per (run, target, metric).
- log_offset: keyed by (host, reader, path) — the reader is the machine that read the file (a
  worker reading a `local: true` host's log elsewhere is not a rotation); the run that advanced
  the offset and the offset before it, so a retry of that run reads the same lines again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0200_inspection"
down_revision = "0700_change_kpi"
branch_labels = None
depends_on = None

S = "hisops"

DEDUPE_FINDINGS = """
DELETE FROM hisops.finding f USING hisops.finding g
WHERE f.inspection_run_id = g.inspection_run_id AND f.target_id = g.target_id
  AND f.check_id = g.check_id AND f.id < g.id
"""


def upgrade() -> None:
    op.execute(
        "UPDATE hisops.incident i SET last_finding_id = NULL WHERE last_finding_id IN ("
        "SELECT f.id FROM hisops.finding f JOIN hisops.finding g ON f.inspection_run_id = "
        "g.inspection_run_id AND f.target_id = g.target_id AND f.check_id = g.check_id "
        "AND f.id < g.id)"
    )
    op.execute(DEDUPE_FINDINGS)
    op.create_index(
        "uq_finding_run_target_check",
        "finding",
        ["inspection_run_id", "target_id", "check_id"],
        unique=True,
        schema=S,
    )

    op.add_column(
        "metric_sample",
        sa.Column(
            "inspection_run_id",
            sa.BigInteger,
            sa.ForeignKey(
                f"{S}.inspection_run.id",
                ondelete="CASCADE",
                name="fk_metric_sample_inspection_run_id",
            ),
        ),
        schema=S,
    )
    op.create_index(
        "uq_metric_sample_run_target_metric",
        "metric_sample",
        ["inspection_run_id", "target_id", "metric"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("inspection_run_id IS NOT NULL"),
    )

    op.add_column(
        "log_offset", sa.Column("reader", sa.Text, nullable=False, server_default=""), schema=S
    )
    op.add_column("log_offset", sa.Column("inspection_run_id", sa.BigInteger), schema=S)
    op.add_column("log_offset", sa.Column("prev_inode", sa.BigInteger), schema=S)
    op.add_column("log_offset", sa.Column("prev_offset", sa.BigInteger), schema=S)
    op.drop_constraint("pk_log_offset", "log_offset", schema=S)
    op.create_primary_key("pk_log_offset", "log_offset", ["host_id", "reader", "path"], schema=S)


def downgrade() -> None:
    op.execute("DELETE FROM hisops.log_offset WHERE reader <> ''")
    op.drop_constraint("pk_log_offset", "log_offset", schema=S)
    op.create_primary_key("pk_log_offset", "log_offset", ["host_id", "path"], schema=S)
    for col in ("prev_offset", "prev_inode", "inspection_run_id", "reader"):
        op.drop_column("log_offset", col, schema=S)
    op.drop_index("uq_metric_sample_run_target_metric", "metric_sample", schema=S)
    op.drop_column("metric_sample", "inspection_run_id", schema=S)
    op.drop_index("uq_finding_run_target_check", "finding", schema=S)
