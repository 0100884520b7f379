"""initial ops catalog

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Self-contained on purpose: a migration is history and must not follow later edits of
``hisops.catalog.tables``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "hisops"
TS = sa.DateTime(timezone=True)
NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")

SEVERITY_CHECK = "severity IN ('ok', 'warn', 'critical', 'check_error')"

# 等保 2.0 (GB/T 22239-2019) asks that audit records be protected from deletion and change.
AUDIT_GUARD_FUNCTION = """
CREATE FUNCTION hisops.audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hisops.audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = '审计记录不可修改或删除 (audit records may not be changed or deleted)';
END
$$
"""
AUDIT_GUARD_ROW = """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON hisops.audit_event
FOR EACH ROW EXECUTE PROCEDURE hisops.audit_event_append_only()
"""
AUDIT_GUARD_TRUNCATE = """
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON hisops.audit_event
FOR EACH STATEMENT EXECUTE PROCEDURE hisops.audit_event_append_only()
"""


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False)


def _selfcheck_run() -> None:
    op.create_table(
        "selfcheck_run",
        _id(),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("results", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_selfcheck_run"),
        schema=S,
    )
    op.create_index("ix_selfcheck_run_started_at", "selfcheck_run", ["started_at"], schema=S)


def _inspection_run_and_finding() -> None:
    op.create_table(
        "inspection_run",
        _id(),
        sa.Column("dag_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("logical_date", TS),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("state", sa.Text, nullable=False, server_default="running"),
        sa.Column("report_path", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_inspection_run"),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_inspection_run_dag_id_run_id"),
        schema=S,
    )
    op.create_index("ix_inspection_run_started_at", "inspection_run", ["started_at"], schema=S)
    op.create_table(
        "finding",
        _id(),
        sa.Column("inspection_run_id", sa.BigInteger, nullable=False),
        sa.Column("check_id", sa.Text, nullable=False),
        sa.Column("target_kind", sa.Text, nullable=False),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("system_id", sa.Text),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("value", sa.Numeric),
        sa.Column("value_text", sa.Text),
        sa.Column("threshold", sa.Text),
        sa.Column("message_zh", sa.Text, nullable=False),
        sa.Column("message_en", sa.Text, nullable=False),
        sa.Column("suggestion_zh", sa.Text),
        sa.Column("suggestion_en", sa.Text),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("observed_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_finding"),
        sa.ForeignKeyConstraint(
            ["inspection_run_id"],
            [f"{S}.inspection_run.id"],
            ondelete="CASCADE",
            name="fk_finding_inspection_run_id",
        ),
        sa.CheckConstraint(SEVERITY_CHECK, name="ck_finding_severity"),
        sa.CheckConstraint(
            "target_kind IN ('database', 'host', 'log', 'endpoint', 'system')",
            name="ck_finding_target_kind",
        ),
        schema=S,
    )
    op.create_index("ix_finding_inspection_run_id", "finding", ["inspection_run_id"], schema=S)
    op.create_index(
        "ix_finding_target_id_check_id_observed_at",
        "finding",
        ["target_id", "check_id", "observed_at"],
        schema=S,
    )
    op.create_index("ix_finding_observed_at", "finding", ["observed_at"], schema=S)


def _incident() -> None:
    op.create_table(
        "incident",
        _id(),
        sa.Column("check_id", sa.Text, nullable=False),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("system_id", sa.Text),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("title_zh", sa.Text, nullable=False),
        sa.Column("title_en", sa.Text, nullable=False),
        sa.Column("opened_at", TS, nullable=False, server_default=NOW),
        sa.Column("acknowledged_at", TS),
        sa.Column("acknowledged_by", sa.Text),
        sa.Column("resolved_at", TS),
        sa.Column("last_seen_at", TS, nullable=False, server_default=NOW),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("owner", sa.Text),
        sa.Column("last_finding_id", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_incident"),
        sa.ForeignKeyConstraint(
            ["last_finding_id"],
            [f"{S}.finding.id"],
            ondelete="SET NULL",
            name="fk_incident_last_finding_id",
        ),
        sa.CheckConstraint(SEVERITY_CHECK, name="ck_incident_severity"),
        sa.CheckConstraint(
            "state IN ('open', 'acknowledged', 'resolved')", name="ck_incident_state"
        ),
        schema=S,
    )
    # at most one open (not yet resolved) incident per check and target
    op.create_index(
        "uq_incident_open_check_target",
        "incident",
        ["check_id", "target_id"],
        unique=True,
        postgresql_where=sa.text("state <> 'resolved'"),
        schema=S,
    )
    op.create_index("ix_incident_opened_at", "incident", ["opened_at"], schema=S)
    op.create_index(
        "ix_incident_system_id_opened_at", "incident", ["system_id", "opened_at"], schema=S
    )
    op.create_index("ix_incident_last_finding_id", "incident", ["last_finding_id"], schema=S)


def _backup() -> None:
    op.create_table(
        "backup",
        _id(),
        sa.Column("database_id", sa.Text, nullable=False),
        sa.Column("system_id", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="running"),
        sa.Column("path", sa.Text),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("manifest", JSONB),
        sa.Column("manifest_sha256", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("deleted_at", TS),
        sa.Column("deleted_reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_backup"),
        sa.CheckConstraint("kind IN ('database', 'files')", name="ck_backup_kind"),
        sa.CheckConstraint(
            "state IN ('running', 'completed', 'verified', 'failed')", name="ck_backup_state"
        ),
        schema=S,
    )
    op.create_index(
        "ix_backup_database_id_state_finished_at",
        "backup",
        ["database_id", "state", "finished_at"],
        schema=S,
    )
    op.create_index("ix_backup_started_at", "backup", ["started_at"], schema=S)
    op.create_table(
        "backup_verification",
        _id(),
        sa.Column("backup_id", sa.BigInteger, nullable=False),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("restore_seconds", sa.Numeric),
        sa.Column("evidence_path", sa.Text),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_backup_verification"),
        sa.ForeignKeyConstraint(
            ["backup_id"], [f"{S}.backup.id"], name="fk_backup_verification_backup_id"
        ),
        schema=S,
    )
    op.create_index(
        "ix_backup_verification_backup_id", "backup_verification", ["backup_id"], schema=S
    )
    op.create_index(
        "ix_backup_verification_started_at", "backup_verification", ["started_at"], schema=S
    )


def _maintenance_and_change() -> None:
    op.create_table(
        "maintenance_operation",
        _id(),
        sa.Column("database_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("target_object", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="running"),
        sa.Column("started_at", TS, nullable=False, server_default=NOW),
        sa.Column("finished_at", TS),
        sa.Column("before", JSONB),
        sa.Column("after", JSONB),
        sa.Column("backup_id", sa.BigInteger),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_operation"),
        sa.ForeignKeyConstraint(
            ["backup_id"], [f"{S}.backup.id"], name="fk_maintenance_operation_backup_id"
        ),
        schema=S,
    )
    op.create_index(
        "ix_maintenance_operation_database_id_started_at",
        "maintenance_operation",
        ["database_id", "started_at"],
        schema=S,
    )
    op.create_index(
        "ix_maintenance_operation_backup_id", "maintenance_operation", ["backup_id"], schema=S
    )
    op.create_table(
        "change_record",
        _id(),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("approved_by", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="requested"),
        sa.Column("pre_backup_id", sa.BigInteger),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.PrimaryKeyConstraint("id", name="pk_change_record"),
        sa.ForeignKeyConstraint(
            ["pre_backup_id"], [f"{S}.backup.id"], name="fk_change_record_pre_backup_id"
        ),
        schema=S,
    )
    op.create_index("ix_change_record_started_at", "change_record", ["started_at"], schema=S)
    op.create_index("ix_change_record_pre_backup_id", "change_record", ["pre_backup_id"], schema=S)


def _audit_event() -> None:
    op.create_table(
        "audit_event",
        _id(),
        sa.Column("at", TS, nullable=False, server_default=NOW),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("dag_id", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
        sa.CheckConstraint(
            "result IN ('success', 'failure', 'refused')", name="ck_audit_event_result"
        ),
        schema=S,
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"], schema=S)
    op.create_index("ix_audit_event_actor_at", "audit_event", ["actor", "at"], schema=S)
    op.execute(AUDIT_GUARD_FUNCTION)
    op.execute(AUDIT_GUARD_ROW)
    op.execute(AUDIT_GUARD_TRUNCATE)


def _log_offset_and_metrics() -> None:
    op.create_table(
        "log_offset",
        sa.Column("host_id", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("inode", sa.BigInteger),
        sa.Column("offset", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("host_id", "path", name="pk_log_offset"),
        schema=S,
    )
    op.create_table(
        "metric_sample",
        _id(),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("observed_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_metric_sample"),
        schema=S,
    )
    op.create_index(
        "ix_metric_sample_target_id_metric_observed_at",
        "metric_sample",
        ["target_id", "metric", "observed_at"],
        schema=S,
    )


def upgrade() -> None:
    _selfcheck_run()
    _inspection_run_and_finding()
    _incident()
    _backup()
    _maintenance_and_change()
    _audit_event()
    _log_offset_and_metrics()


def downgrade() -> None:
    for table in (
        "metric_sample",
        "log_offset",
        "audit_event",
        "change_record",
        "maintenance_operation",
        "backup_verification",
        "backup",
        "incident",
        "finding",
        "inspection_run",
        "selfcheck_run",
    ):
        op.drop_table(table, schema=S)
    op.execute("DROP FUNCTION hisops.audit_event_append_only()")
