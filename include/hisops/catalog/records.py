"""What goes into and comes out of the ops catalog: frozen dataclasses, one per table.

Field names equal column names, so a row maps onto its record with ``Record(**row._mapping)``.
The text values the database constrains with CHECKs are spelled out as ``Literal`` types here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from hisops.severity import RANK, Severity, worse  # noqa: F401 - re-exported: one home

TargetKind = Literal["database", "host", "log", "endpoint", "system"]
IncidentState = Literal["open", "acknowledged", "resolved"]
IncidentAction = Literal["opened", "escalated", "updated", "resolved"]
BackupKind = Literal["database", "files", "physical"]
BackupState = Literal["running", "completed", "verified", "failed", "missing"]
AuditResult = Literal["success", "failure", "refused"]
ProposalState = Literal["proposed", "approved", "applied", "measured", "rejected"]

SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "critical", "check_error")
TARGET_KINDS: tuple[TargetKind, ...] = ("database", "host", "log", "endpoint", "system")
INCIDENT_STATES: tuple[IncidentState, ...] = ("open", "acknowledged", "resolved")
BACKUP_KINDS: tuple[BackupKind, ...] = ("database", "files", "physical")
BACKUP_STATES: tuple[BackupState, ...] = ("running", "completed", "verified", "failed", "missing")
AUDIT_RESULTS: tuple[AuditResult, ...] = ("success", "failure", "refused")
PROPOSAL_STATES: tuple[ProposalState, ...] = (
    "proposed",
    "approved",
    "applied",
    "measured",
    "rejected",
)

# How bad a severity is: the one ranking lives in hisops.severity (re-exported for the catalog).
SEVERITY_RANK: Mapping[str, int] = RANK


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FindingRecord:
    """One check's verdict about one target (in: from inspect/, out: for reports)."""

    check_id: str
    target_kind: TargetKind
    target_id: str
    severity: Severity
    message_zh: str
    message_en: str
    system_id: str | None = None
    value: float | None = None
    value_text: str | None = None
    threshold: str | None = None
    suggestion_zh: str | None = None
    suggestion_en: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    observed_at: datetime = field(default_factory=_now)
    id: int | None = None
    inspection_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class SelfcheckRecord:
    id: int
    started_at: datetime
    finished_at: datetime | None
    dag_run_id: str | None
    results: list[dict[str, Any]]
    ok: bool


@dataclass(frozen=True, slots=True)
class InspectionRunRecord:
    id: int
    dag_id: str
    run_id: str
    logical_date: datetime | None
    started_at: datetime
    finished_at: datetime | None
    state: str
    report_path: str | None


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    id: int
    check_id: str
    target_id: str
    system_id: str | None
    severity: Severity
    state: IncidentState
    title_zh: str
    title_en: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    last_seen_at: datetime
    occurrences: int
    owner: str | None
    last_finding_id: int | None
    resolution_note: str | None = None  # what resolved it (e.g. the backup whose drill passed)


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """What ``upsert_incident_for`` did; notify/ decides from ``action`` whom to tell."""

    action: IncidentAction
    incident: IncidentRecord
    previous_severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class BackupRecord:
    id: int
    database_id: str
    system_id: str | None
    kind: BackupKind
    state: BackupState
    path: str | None
    started_at: datetime
    finished_at: datetime | None
    size_bytes: int | None
    manifest: dict[str, Any] | None
    manifest_sha256: str | None
    error: str | None
    dag_run_id: str | None
    deleted_at: datetime | None
    deleted_reason: str | None


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    id: int
    backup_id: int
    started_at: datetime
    finished_at: datetime | None
    ok: bool
    restore_seconds: float | None
    evidence_path: str | None
    details: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    id: int
    database_id: str
    kind: str
    target_object: str | None
    state: str
    started_at: datetime
    finished_at: datetime | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    backup_id: int | None
    dag_run_id: str | None
    error: str | None
    proposal_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    id: int
    title: str
    description: str | None
    requested_by: str
    approved_by: str | None
    state: str
    pre_backup_id: int | None
    started_at: datetime | None
    finished_at: datetime | None
    details: dict[str, Any]
    requested_at: datetime | None = None
    kind: str | None = None
    targets: list[str] = field(default_factory=list)
    dag_run_id: str | None = None
    failed_at: datetime | None = None
    incident_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeStepRecord:
    """One step of a change (request, assessment, backup, approval, apply, verify, revert …)."""

    id: int
    change_id: int
    step: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KpiReportRecord:
    id: int
    period_start: datetime
    period_end: datetime
    label: str
    generated_at: datetime
    path: str
    sha256: str
    summary: dict[str, Any]
    dag_run_id: str | None


@dataclass(frozen=True, slots=True)
class EvidencePackRecord:
    id: int
    month: str
    created_at: datetime
    path: str
    sha256: str
    size_bytes: int
    items: list[dict[str, Any]]
    created_by: str
    dag_run_id: str | None


@dataclass(frozen=True, slots=True)
class AuditEventRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    result: AuditResult
    details: dict[str, Any]
    dag_id: str | None
    run_id: str | None
    seq: int | None = None
    source: str | None = None
    reason: str | None = None
    prev_hash: str | None = None
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class AuditExportRecord:
    id: int
    month: str
    period_start: datetime
    period_end: datetime
    first_seq: int | None
    last_seq: int | None
    event_count: int
    head_hash: str | None
    path: str
    file_sha256: str
    chain_ok: bool
    exported_at: datetime
    exported_by: str


@dataclass(frozen=True, slots=True)
class SecurityBaselineRecord:
    target_id: str
    item: str
    baseline: Any
    accepted_at: datetime
    accepted_by: str
    drift: Any
    drift_since: datetime | None
    checked_at: datetime


@dataclass(frozen=True, slots=True)
class LogOffset:
    host_id: str
    path: str
    inode: int | None
    offset: int
    updated_at: datetime | None = None
    reader: str = ""
    inspection_run_id: int | None = None
    prev_inode: int | None = None
    prev_offset: int | None = None


@dataclass(frozen=True, slots=True)
class MetricSample:
    target_id: str
    metric: str
    value: float
    observed_at: datetime = field(default_factory=_now)
    id: int | None = None
    inspection_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class StorageLocation:
    """A shared storage location (backups, reports) and the id its marker file must carry."""

    name: str
    storage_id: str
    path: str
    created_at: datetime | None = None
    created_by: str | None = None


# --- 保留清理 retention cleanup ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanupRunRecord:
    id: int
    dag_id: str
    run_id: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    state: str
    report_path: str | None
    summary: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CleanupStepRecord:
    id: int
    cleanup_run_id: int
    scope: str
    target: str
    item: str
    state: str
    reason: str | None
    files: int
    rows: int
    bytes_freed: int
    skipped: int
    failed: int
    notes: list[str]
    details: dict[str, Any]
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CleanupFileRecord:
    id: int
    cleanup_run_id: int
    host_id: str
    rule: str
    path: str
    size_bytes: int
    mtime: datetime
    action: str
    outcome: str
    reason: str | None
    bytes_freed: int


@dataclass(frozen=True, slots=True)
class MetricDaily:
    """One metric of one target on one day (inventory time zone): kept for years (trends, KPI)."""

    day: date
    target_id: str
    metric: str
    n: int
    min: float
    max: float
    sum: float

    @property
    def avg(self) -> float:
        return self.sum / self.n if self.n else 0.0


@dataclass(frozen=True, slots=True)
class FindingDaily:
    day: date
    target_kind: str
    target_id: str
    check_id: str
    system_id: str | None
    n: int
    n_ok: int
    n_warn: int
    n_critical: int
    n_check_error: int
    value_n: int
    value_min: float | None
    value_max: float | None
    value_sum: float | None


@dataclass(frozen=True, slots=True)
class PruneBatch:
    """What one batched prune transaction did; ``last`` is the keyset to continue after."""

    rows: int
    last: tuple[datetime, int] | None = None


@dataclass(frozen=True, slots=True)
class StatementSnapshot:
    """pg_stat_statements of one database at one review: cumulative
    counters and deltas per query."""

    id: int
    database_id: str
    taken_at: datetime
    stats_reset: datetime | None
    dag_run_id: str | None
    statements: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A tuning suggestion (create/drop an index) on its way proposed →
    approved → applied → measured."""

    id: int
    database_id: str
    kind: str
    object_name: str
    definition: str
    state: ProposalState
    created_at: datetime
    updated_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    details: dict[str, Any]
    measured: dict[str, Any] | None
