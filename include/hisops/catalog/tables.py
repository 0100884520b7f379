"""The ops catalog's tables (SQLAlchemy Core), all in the PostgreSQL schema ``hisops``.

This module describes the schema as the code sees it; the Alembic migrations in
``migrations/versions`` create it. ``tests/catalog`` checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from hisops.catalog.records import (
    AUDIT_RESULTS,
    BACKUP_KINDS,
    BACKUP_STATES,
    INCIDENT_STATES,
    PROPOSAL_STATES,
    SEVERITIES,
    TARGET_KINDS,
)

SCHEMA = "hisops"

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    },
)

TS = DateTime(timezone=True)
JSON = JSONB(none_as_null=True)
NUMBER = Numeric(asdecimal=False)  # numeric in the database, float in Python
EMPTY_JSON = text("'{}'::jsonb")


def _id() -> Column:
    return Column("id", BigInteger, Identity(), primary_key=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


selfcheck_run = Table(
    "selfcheck_run",
    metadata,
    _id(),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("dag_run_id", Text),
    Column("results", JSON, nullable=False, server_default=text("'[]'::jsonb")),
    Column("ok", Boolean, nullable=False),
    Index(None, "started_at"),
)

inspection_run = Table(
    "inspection_run",
    metadata,
    _id(),
    Column("dag_id", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("logical_date", TS),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("state", Text, nullable=False, server_default="running"),
    Column("report_path", Text),
    UniqueConstraint("dag_id", "run_id"),
    Index(None, "started_at"),
)

finding = Table(
    "finding",
    metadata,
    _id(),
    Column(
        "inspection_run_id",
        BigInteger,
        ForeignKey(inspection_run.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("check_id", Text, nullable=False),
    Column("target_kind", Text, nullable=False),
    Column("target_id", Text, nullable=False),
    Column("system_id", Text),
    Column("severity", Text, nullable=False),
    Column("value", NUMBER),
    Column("value_text", Text),
    Column("threshold", Text),
    Column("message_zh", Text, nullable=False),
    Column("message_en", Text, nullable=False),
    Column("suggestion_zh", Text),
    Column("suggestion_en", Text),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("observed_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(_in("severity", SEVERITIES), name="ck_finding_severity"),
    CheckConstraint(_in("target_kind", TARGET_KINDS), name="ck_finding_target_kind"),
    Index(None, "inspection_run_id"),
    Index("uq_finding_run_target_check", "inspection_run_id", "target_id", "check_id", unique=True),
    Index(None, "target_id", "check_id", "observed_at"),
    Index(None, "observed_at"),
    # the KPI report's availability samples (hisops.catalog.repository_kpi.AVAILABILITY_PREDICATE)
    Index(
        "ix_finding_availability",
        "observed_at",
        postgresql_where=text(
            "check_id IN ('database.reachable', 'host.reachable', 'http.status')"
        ),
    ),
)

incident = Table(
    "incident",
    metadata,
    _id(),
    Column("check_id", Text, nullable=False),
    Column("target_id", Text, nullable=False),
    Column("system_id", Text),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="open"),
    Column("title_zh", Text, nullable=False),
    Column("title_en", Text, nullable=False),
    Column("opened_at", TS, nullable=False, server_default=func.now()),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", Text),
    Column("resolved_at", TS),
    Column("last_seen_at", TS, nullable=False, server_default=func.now()),
    Column("occurrences", Integer, nullable=False, server_default="1"),
    Column("owner", Text),
    Column("last_finding_id", BigInteger, ForeignKey(finding.c.id, ondelete="SET NULL")),
    Column("resolution_note", Text),
    CheckConstraint(_in("severity", SEVERITIES), name="ck_incident_severity"),
    CheckConstraint(_in("state", INCIDENT_STATES), name="ck_incident_state"),
    Index(
        "uq_incident_open_check_target",
        "check_id",
        "target_id",
        unique=True,
        postgresql_where=text("state <> 'resolved'"),
    ),
    Index(None, "opened_at"),
    Index(None, "system_id", "opened_at"),
    Index(None, "last_finding_id"),
)

backup = Table(
    "backup",
    metadata,
    _id(),
    Column("database_id", Text, nullable=False),
    Column("system_id", Text),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="running"),
    Column("path", Text),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("size_bytes", BigInteger),
    Column("manifest", JSON),
    Column("manifest_sha256", Text),
    Column("error", Text),
    Column("dag_run_id", Text),
    Column("deleted_at", TS),
    Column("deleted_reason", Text),
    CheckConstraint(_in("kind", BACKUP_KINDS), name="ck_backup_kind"),
    CheckConstraint(_in("state", BACKUP_STATES), name="ck_backup_state"),
    Index(None, "database_id", "state", "finished_at"),
    Index(None, "started_at"),
)

backup_verification = Table(
    "backup_verification",
    metadata,
    _id(),
    Column("backup_id", BigInteger, ForeignKey(backup.c.id), nullable=False),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("ok", Boolean, nullable=False),
    Column("restore_seconds", NUMBER),
    Column("evidence_path", Text),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("error", Text),
    Index(None, "backup_id"),
    Index(None, "started_at"),
)

maintenance_operation = Table(
    "maintenance_operation",
    metadata,
    _id(),
    Column("database_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("target_object", Text),
    Column("state", Text, nullable=False, server_default="running"),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("before", JSON),
    Column("after", JSON),
    Column("backup_id", BigInteger, ForeignKey(backup.c.id)),
    Column("dag_run_id", Text),
    Column("error", Text),
    Column("proposal_id", BigInteger, ForeignKey("hisops.tuning_proposal.id")),
    Index(None, "database_id", "started_at"),
    Index(None, "backup_id"),
)

change_record = Table(
    "change_record",
    metadata,
    _id(),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Column("requested_by", Text, nullable=False),
    Column("approved_by", Text),
    Column("state", Text, nullable=False, server_default="requested"),
    Column("pre_backup_id", BigInteger, ForeignKey(backup.c.id)),
    Column("started_at", TS),
    Column("finished_at", TS),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("requested_at", TS, nullable=False, server_default=func.now()),
    Column("kind", Text),  # sql | pg_config | package | config_file (hisops.change)
    Column("targets", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("dag_run_id", Text),
    Column("failed_at", TS),  # first failed verification: DORA recovery time starts here
    Column("incident_id", BigInteger, ForeignKey(incident.c.id, ondelete="SET NULL")),
    Index(None, "started_at"),
    Index(None, "pre_backup_id"),
    Index(None, "finished_at"),
)

change_step = Table(
    "change_step",
    metadata,
    _id(),
    Column(
        "change_id", BigInteger, ForeignKey(change_record.c.id, ondelete="CASCADE"), nullable=False
    ),
    Column("step", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Index(None, "change_id"),
)

kpi_report = Table(
    "kpi_report",
    metadata,
    _id(),
    Column("period_start", TS, nullable=False),
    Column("period_end", TS, nullable=False),
    Column("label", Text, nullable=False),
    Column("generated_at", TS, nullable=False, server_default=func.now()),
    Column("path", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("summary", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("dag_run_id", Text),
    Index(None, "period_start"),
)

evidence_pack = Table(
    "evidence_pack",
    metadata,
    _id(),
    Column("month", Text, nullable=False),  # YYYY-MM
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("path", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("items", JSON, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_by", Text, nullable=False),
    Column("dag_run_id", Text),
    Index(None, "month"),
)

audit_event = Table(
    "audit_event",
    metadata,
    _id(),
    Column("at", TS, nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("result", Text, nullable=False),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("dag_id", Text),
    Column("run_id", Text),
    # tamper evidence (hisops.catalog.auditchain): gapless position, link and own hash
    Column("seq", BigInteger),
    Column("source", Text),
    Column("reason", Text),
    Column("prev_hash", Text),
    Column("hash", Text),
    CheckConstraint(_in("result", AUDIT_RESULTS), name="ck_audit_event_result"),
    Index(None, "at"),
    Index(None, "actor", "at"),
    Index(None, "action", "at"),
    Index("uq_audit_event_seq", "seq", unique=True),
)

#: monthly exports of the audit trail with the chain head (pruning requires one, issue 12)
audit_export = Table(
    "audit_export",
    metadata,
    _id(),
    Column("month", Text, nullable=False),
    Column("period_start", TS, nullable=False),
    Column("period_end", TS, nullable=False),
    Column("first_seq", BigInteger),
    Column("last_seq", BigInteger),
    Column("event_count", Integer, nullable=False),
    Column("head_hash", Text),
    Column("path", Text, nullable=False),
    Column("file_sha256", Text, nullable=False),
    Column("chain_ok", Boolean, nullable=False),
    Column("exported_at", TS, nullable=False, server_default=func.now()),
    Column("exported_by", Text, nullable=False),
    Index(None, "period_end"),
)

#: security_audit baselines: what a target's roles/grants/sudoers looked like when accepted
security_baseline = Table(
    "security_baseline",
    metadata,
    Column("target_id", Text, primary_key=True),
    Column("item", Text, primary_key=True),
    Column("baseline", JSON, nullable=False),
    Column("accepted_at", TS, nullable=False, server_default=func.now()),
    Column("accepted_by", Text, nullable=False),
    Column("drift", JSON),
    Column("drift_since", TS),
    Column("checked_at", TS, nullable=False, server_default=func.now()),
)

log_offset = Table(
    "log_offset",
    metadata,
    Column("host_id", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("inode", BigInteger),
    Column("offset", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("reader", Text, nullable=False, server_default=""),  # machine that read the file
    Column("inspection_run_id", BigInteger),  # the run that advanced it …
    Column("prev_inode", BigInteger),  # … and where it stood before (a retry re-reads from there)
    Column("prev_offset", BigInteger),
    PrimaryKeyConstraint("host_id", "reader", "path"),
)

metric_sample = Table(
    "metric_sample",
    metadata,
    _id(),
    Column("target_id", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column("observed_at", TS, nullable=False, server_default=func.now()),
    Column("inspection_run_id", BigInteger, ForeignKey(inspection_run.c.id, ondelete="CASCADE")),
    Index(None, "target_id", "metric", "observed_at"),
    Index(
        "uq_metric_sample_run_target_metric",
        "inspection_run_id",
        "target_id",
        "metric",
        unique=True,
        postgresql_where=text("inspection_run_id IS NOT NULL"),
    ),
)

storage_location = Table(
    # Shared storage the catalog knows (backups, reports): the id in its marker file. A worker whose
    # mount shows another id (or none) is looking at different storage and must not use it.
    "storage_location",
    metadata,
    Column("name", Text, primary_key=True),
    Column("storage_id", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("created_by", Text),
)


# --- 保留清理 retention cleanup (hisops.cleanup) ------------------------------------------------

cleanup_run = Table(
    "cleanup_run",
    metadata,
    _id(),
    Column("dag_id", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
    Column("state", Text, nullable=False, server_default="running"),
    Column("report_path", Text),
    Column("summary", JSON, nullable=False, server_default=EMPTY_JSON),
    UniqueConstraint("dag_id", "run_id"),
    Index(None, "started_at"),
)

cleanup_step = Table(
    "cleanup_step",
    metadata,
    _id(),
    Column(
        "cleanup_run_id",
        BigInteger,
        ForeignKey(cleanup_run.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scope", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("item", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("reason", Text),
    Column("files", BigInteger, nullable=False, server_default="0"),
    Column("rows", BigInteger, nullable=False, server_default="0"),
    Column("bytes_freed", BigInteger, nullable=False, server_default="0"),
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    Column("failed", BigInteger, nullable=False, server_default="0"),
    Column("notes", JSON, nullable=False, server_default=text("'[]'::jsonb")),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("recorded_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(
        "scope IN ('host', 'catalog', 'airflow', 'task_logs')", name="ck_cleanup_step_scope"
    ),
    Index(None, "cleanup_run_id"),
)

cleanup_file = Table(
    "cleanup_file",
    metadata,
    _id(),
    Column(
        "cleanup_run_id",
        BigInteger,
        ForeignKey(cleanup_run.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("host_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("mtime", TS, nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("reason", Text),
    Column("bytes_freed", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "outcome IN ('deleted', 'compressed', 'would_delete', 'would_compress', 'skipped', "
        "'failed')",
        name="ck_cleanup_file_outcome",
    ),
    Index(None, "cleanup_run_id"),
)

metric_daily = Table(
    "metric_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("target_id", Text, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Column("sum", Float, nullable=False),
    Index(None, "target_id", "metric", "day"),
)

finding_daily = Table(
    "finding_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("target_kind", Text, primary_key=True),
    Column("target_id", Text, primary_key=True),
    Column("check_id", Text, primary_key=True),
    Column("system_id", Text),
    Column("n", BigInteger, nullable=False),
    Column("n_ok", BigInteger, nullable=False),
    Column("n_warn", BigInteger, nullable=False),
    Column("n_critical", BigInteger, nullable=False),
    Column("n_check_error", BigInteger, nullable=False),
    Column("value_n", BigInteger, nullable=False),
    Column("value_min", NUMBER),
    Column("value_max", NUMBER),
    Column("value_sum", NUMBER),
    Index(None, "target_id", "check_id", "day"),
)

# keyset order for batched pruning (hisops.cleanup.records): each batch starts where the last ended
Index("ix_metric_sample_observed_at_id", metric_sample.c.observed_at, metric_sample.c.id)
Index("ix_finding_observed_at_id", finding.c.observed_at, finding.c.id)

# --- tuning (performance_review, db_maintenance) -------------------------------------------------
statement_snapshot = Table(
    "statement_snapshot",
    metadata,
    _id(),
    Column("database_id", Text, nullable=False),
    Column("taken_at", TS, nullable=False, server_default=func.now()),
    Column("stats_reset", TS),
    Column("dag_run_id", Text),
    Column("statements", JSON, nullable=False, server_default=text("'[]'::jsonb")),
    Index(None, "database_id", "taken_at"),
)

tuning_proposal = Table(
    "tuning_proposal",
    metadata,
    _id(),
    Column("database_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("object_name", Text, nullable=False),
    Column("definition", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="proposed"),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("decided_by", Text),
    Column("decided_at", TS),
    Column("details", JSON, nullable=False, server_default=EMPTY_JSON),
    Column("measured", JSON),
    CheckConstraint(_in("state", PROPOSAL_STATES), name="ck_tuning_proposal_state"),
    Index(None, "database_id", "state"),
    Index(
        "uq_tuning_proposal_open",
        "database_id",
        "kind",
        "definition",
        unique=True,
        postgresql_where=text("state IN ('proposed', 'approved')"),
    ),
)
