"""KPI aggregates (运维考核) over a period: every figure is computed by PostgreSQL.

A mixin of :class:`hisops.catalog.repository.CatalogRepository` (kept apart because it is long):
each method is one read-only query that returns a handful of aggregate rows per system,
database or week — never the raw findings, incidents or backups — so a year of catalog data
costs the report seconds and kilobytes (``bench/kpi_report.py``).

Periods are half-open ``[start, end)``; ``tz`` is the inventory's time zone (local days and
the 08:00 inspection deadline are local).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text

from hisops.catalog.records import EvidencePackRecord, KpiReportRecord
from hisops.catalog.repository_base import Statements

if TYPE_CHECKING:
    from sqlalchemy import Engine

R = TypeVar("R")

#: findings that say whether a target answered: the availability samples
AVAILABILITY_CHECKS = ("database.reachable", "host.reachable", "http.status")
#: literal, so that the partial index ix_finding_availability (same predicate) serves the query
AVAILABILITY_PREDICATE = f"check_id IN ({', '.join(repr(c) for c in AVAILABILITY_CHECKS)})"
#: change states that never touched a target (not counted in DORA figures)
CHANGE_NOT_APPLIED = ("requested", "assessed", "approved", "refused", "cancelled", "running")
CHANGE_FAILED = ("failed", "rolled_back", "failed_revert")

# Checks taken while an operation or a change was working on the target do not count: the
# (small) set of busy intervals of the period is built once and hash-joined on the target.
AVAILABILITY_SQL = f"""
WITH busy AS MATERIALIZED (
    SELECT m.database_id AS target_id, m.started_at AS s, coalesce(m.finished_at, m.started_at) AS e
    FROM hisops.maintenance_operation m
    WHERE m.started_at < :end AND coalesce(m.finished_at, m.started_at) >= :start
    UNION ALL
    SELECT t.target_id, c.started_at, coalesce(c.finished_at, c.started_at)
    FROM hisops.change_record c CROSS JOIN LATERAL unnest(c.targets) AS t(target_id)
    WHERE c.started_at IS NOT NULL AND c.state NOT IN ('refused', 'cancelled')
      AND c.started_at < :end AND coalesce(c.finished_at, c.started_at) >= :start
), sample AS MATERIALIZED (
    SELECT coalesce(f.system_id, '') AS system_id, f.target_id, f.severity = 'ok' AS up,
           bool_or(b.target_id IS NOT NULL) AS excluded
    FROM hisops.finding f
    LEFT JOIN busy b ON b.target_id = f.target_id AND f.observed_at BETWEEN b.s AND b.e
    WHERE f.observed_at >= :start AND f.observed_at < :end
      AND f.{AVAILABILITY_PREDICATE}
    GROUP BY f.id
)
SELECT system_id, coalesce(target_id, '') AS target_id, GROUPING(target_id) = 1 AS per_system,
       count(DISTINCT target_id) AS targets,
       count(*) FILTER (WHERE NOT excluded) AS checks,
       count(*) FILTER (WHERE up AND NOT excluded) AS up,
       count(*) FILTER (WHERE excluded) AS excluded
FROM sample GROUP BY GROUPING SETS ((system_id), (system_id, target_id))
ORDER BY per_system DESC, system_id, target_id
"""

INCIDENTS_SQL = """
SELECT coalesce(system_id, '') AS system_id, GROUPING(system_id) = 1 AS total,
       count(*) AS opened,
       count(*) FILTER (WHERE severity = 'critical') AS critical,
       count(acknowledged_at) AS acknowledged,
       count(resolved_at) AS resolved,
       avg(extract(epoch FROM acknowledged_at - opened_at)) AS mtta_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - opened_at))
         AS mtta_p50_s,
       avg(extract(epoch FROM resolved_at - opened_at)) AS mttr_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - opened_at))
         AS mttr_p50_s
FROM hisops.incident
WHERE opened_at >= :start AND opened_at < :end
GROUP BY GROUPING SETS ((system_id), ())
ORDER BY total, system_id
"""

BACKUPS_SQL = """
SELECT database_id, coalesce(system_id, '') AS system_id, kind,
       count(*) AS attempted,
       count(*) FILTER (WHERE state = 'verified') AS verified,
       count(*) FILTER (WHERE state IN ('failed', 'missing')) AS failed,
       count(DISTINCT (started_at AT TIME ZONE :tz)::date) FILTER (WHERE state = 'verified')
         AS verified_days
FROM hisops.backup
WHERE kind IN ('database', 'physical') AND started_at >= :start AND started_at < :end
GROUP BY database_id, system_id, kind ORDER BY system_id, database_id, kind
"""

DRILLS_SQL = """
SELECT coalesce(b.system_id, '') AS system_id, GROUPING(b.system_id) = 1 AS total,
       count(*) AS drills, count(*) FILTER (WHERE v.ok) AS ok,
       avg(v.restore_seconds) FILTER (WHERE v.ok) AS rto_avg_s,
       max(v.restore_seconds) FILTER (WHERE v.ok) AS rto_max_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v.restore_seconds) FILTER (WHERE v.ok)
         AS rto_p50_s
FROM hisops.backup_verification v JOIN hisops.backup b ON b.id = v.backup_id
WHERE v.started_at >= :start AND v.started_at < :end
GROUP BY GROUPING SETS ((b.system_id), ())
ORDER BY total, system_id
"""

RTO_TREND_SQL = """
SELECT date_trunc(:bucket, v.started_at AT TIME ZONE :tz)::date AS bucket,
       count(*) AS drills, avg(v.restore_seconds) AS rto_avg_s, max(v.restore_seconds) AS rto_max_s
FROM hisops.backup_verification v
WHERE v.ok AND v.restore_seconds IS NOT NULL AND v.started_at >= :start AND v.started_at < :end
GROUP BY 1 ORDER BY 1
"""

PITR_SQL = """
SELECT EXISTS (SELECT 1 FROM hisops.backup WHERE kind = 'physical') AS tier,
       (SELECT count(*) FROM hisops.backup_verification v JOIN hisops.backup b ON b.id = v.backup_id
        WHERE b.kind = 'physical' AND v.ok AND v.details ? 'rpo_seconds'
          AND v.started_at >= :start AND v.started_at < :end) AS measurements,
       (SELECT avg((v.details ->> 'rpo_seconds')::numeric) FROM hisops.backup_verification v
        JOIN hisops.backup b ON b.id = v.backup_id
        WHERE b.kind = 'physical' AND v.ok AND v.details ? 'rpo_seconds'
          AND v.started_at >= :start AND v.started_at < :end) AS rpo_avg_s,
       (SELECT max((v.details ->> 'rpo_seconds')::numeric) FROM hisops.backup_verification v
        JOIN hisops.backup b ON b.id = v.backup_id
        WHERE b.kind = 'physical' AND v.ok AND v.details ? 'rpo_seconds'
          AND v.started_at >= :start AND v.started_at < :end) AS rpo_max_s
"""

# The longest stretch without a verified logical backup: the worst-case data loss of that tier.
LOGICAL_GAP_SQL = """
SELECT coalesce(system_id, '') AS system_id, database_id,
       extract(epoch FROM max(gap)) AS max_gap_s, count(*) AS backups
FROM (SELECT system_id, database_id, finished_at,
             finished_at - lag(finished_at) OVER (PARTITION BY database_id ORDER BY finished_at)
               AS gap
      FROM hisops.backup
      WHERE kind = 'database' AND state = 'verified' AND finished_at < :end) g
WHERE finished_at >= :start
GROUP BY 1, 2 ORDER BY max_gap_s DESC NULLS LAST, database_id
"""

INSPECTIONS_SQL = """
WITH run AS (
    SELECT (coalesce(logical_date, started_at) AT TIME ZONE :tz)::date AS day, state,
           finished_at AT TIME ZONE :tz AS finished_local
    FROM hisops.inspection_run
    WHERE dag_id = :dag_id AND run_id NOT LIKE 'backfill%'
      AND coalesce(logical_date, started_at) >= :start AND coalesce(logical_date, started_at) < :end
), day AS (
    SELECT day, bool_or(state = 'success' AND finished_local < day + CAST(:deadline AS time))
             AS punctual,
           bool_or(state = 'success') AS finished,
           min(finished_local) FILTER (WHERE state = 'success') AS first_done
    FROM run GROUP BY day
)
SELECT count(*) AS days_run, count(*) FILTER (WHERE punctual) AS punctual,
       count(*) FILTER (WHERE finished) AS finished,
       max(first_done::time) AS latest_finish, avg(first_done::time) AS average_finish
FROM day
"""

CHANGES_SQL = """
SELECT count(*) FILTER (WHERE state = 'completed') AS completed,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'rolled_back') AS rolled_back,
       count(*) FILTER (WHERE state = 'failed_revert') AS failed_revert,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE state = 'refused') AS refused,
       avg(extract(epoch FROM finished_at - failed_at))
           FILTER (WHERE state = 'rolled_back' AND failed_at IS NOT NULL) AS recovery_avg_s,
       max(extract(epoch FROM finished_at - failed_at))
           FILTER (WHERE state = 'rolled_back' AND failed_at IS NOT NULL) AS recovery_max_s
FROM hisops.change_record
WHERE coalesce(finished_at, requested_at) >= :start AND coalesce(finished_at, requested_at) < :end
"""

OPERATORS_SQL = """
SELECT actor, sum(acks)::int AS acknowledgements, avg(ack_s) AS mtta_s,
       sum(requested)::int AS changes_requested, sum(approved)::int AS changes_approved
FROM (
    SELECT acknowledged_by AS actor, 1 AS acks, extract(epoch FROM acknowledged_at - opened_at)
             AS ack_s,
           0 AS requested, 0 AS approved
    FROM hisops.incident
    WHERE acknowledged_by IS NOT NULL AND acknowledged_at >= :start AND acknowledged_at < :end
    UNION ALL
    SELECT requested_by, 0, NULL, 1, 0 FROM hisops.change_record
    WHERE requested_at >= :start AND requested_at < :end
    UNION ALL
    SELECT approved_by, 0, NULL, 0, 1 FROM hisops.change_record
    WHERE approved_by IS NOT NULL AND requested_at >= :start AND requested_at < :end
) work
GROUP BY actor ORDER BY sum(acks) + sum(requested) + sum(approved) DESC, actor
"""


# --- rows ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AvailabilityRow:
    system_id: str
    target_id: str  # '' on a per-system row
    per_system: bool
    targets: int
    checks: int
    up: int
    excluded: int

    @property
    def down(self) -> int:
        return self.checks - self.up


@dataclass(frozen=True, slots=True)
class IncidentKpiRow:
    system_id: str
    total: bool
    opened: int
    critical: int
    acknowledged: int
    resolved: int
    mtta_s: float | None
    mtta_p50_s: float | None
    mttr_s: float | None
    mttr_p50_s: float | None


@dataclass(frozen=True, slots=True)
class BackupKpiRow:
    database_id: str
    system_id: str
    kind: str
    attempted: int
    verified: int
    failed: int
    verified_days: int


@dataclass(frozen=True, slots=True)
class DrillKpiRow:
    system_id: str
    total: bool
    drills: int
    ok: int
    rto_avg_s: float | None
    rto_max_s: float | None
    rto_p50_s: float | None


@dataclass(frozen=True, slots=True)
class RtoPoint:
    bucket: Any  # date: first day of the day/week/month
    drills: int
    rto_avg_s: float
    rto_max_s: float


@dataclass(frozen=True, slots=True)
class PitrKpiRow:
    tier: bool
    measurements: int
    rpo_avg_s: float | None
    rpo_max_s: float | None


@dataclass(frozen=True, slots=True)
class LogicalGapRow:
    system_id: str
    database_id: str
    max_gap_s: float | None
    backups: int


@dataclass(frozen=True, slots=True)
class InspectionKpiRow:
    days_run: int
    punctual: int
    finished: int
    latest_finish: Any  # time | None
    average_finish: Any  # timedelta | None (avg of a time is an interval)


@dataclass(frozen=True, slots=True)
class ChangeKpiRow:
    completed: int
    failed: int
    rolled_back: int
    failed_revert: int
    cancelled: int
    refused: int
    recovery_avg_s: float | None
    recovery_max_s: float | None


@dataclass(frozen=True, slots=True)
class OperatorKpiRow:
    actor: str
    acknowledgements: int
    mtta_s: float | None
    changes_requested: int
    changes_approved: int


def _float(value: Any) -> Any:
    """numeric → float (Decimal is awkward in templates and JSON); other values unchanged."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


class KpiQueries:
    """The KPI report's queries (mixed into CatalogRepository)."""

    engine: Engine

    def _rows(self, cls: type[R], sql: str, **params: Any) -> list[R]:
        with self.engine.begin() as conn:
            conn.execute(
                text("SET LOCAL jit = off")
            )  # compiling costs seconds; these queries run once
            result = conn.execute(text(sql), params)
            return [cls(**{k: _float(v) for k, v in row._mapping.items()}) for row in result]

    def kpi_availability(self, start: datetime, end: datetime) -> list[AvailabilityRow]:
        """Reachability/endpoint samples per system (``per_system``) and per target: how many found
        the target up, how many were taken during a maintenance operation
        or change on it (excluded)."""
        return self._rows(AvailabilityRow, AVAILABILITY_SQL, start=start, end=end)

    def kpi_incidents(self, start: datetime, end: datetime) -> list[IncidentKpiRow]:
        """Incidents opened in the period per system, then one total row (``total`` true)."""
        return self._rows(IncidentKpiRow, INCIDENTS_SQL, start=start, end=end)

    def kpi_backups(self, start: datetime, end: datetime, tz: str) -> list[BackupKpiRow]:
        """Per database and tier: backups started in the period and
        local days with a verified one."""
        return self._rows(BackupKpiRow, BACKUPS_SQL, start=start, end=end, tz=tz)

    def kpi_drills(self, start: datetime, end: datetime) -> list[DrillKpiRow]:
        """Restore drills per system (then a total row): count, passed,
        restore time of passed ones."""
        return self._rows(DrillKpiRow, DRILLS_SQL, start=start, end=end)

    def kpi_rto_trend(
        self, start: datetime, end: datetime, tz: str, bucket: str = "week"
    ) -> list[RtoPoint]:
        """Measured restore time of passed drills per local day/week/month, oldest first."""
        if bucket not in ("day", "week", "month"):
            raise ValueError(f"bucket must be day, week or month, not {bucket!r}")
        return self._rows(RtoPoint, RTO_TREND_SQL, start=start, end=end, tz=tz, bucket=bucket)

    def kpi_pitr(self, start: datetime, end: datetime) -> PitrKpiRow:
        """Whether a physical (PITR) tier exists, and the RPO its drills measured in the period."""
        return self._rows(PitrKpiRow, PITR_SQL, start=start, end=end)[0]

    def kpi_logical_gaps(self, start: datetime, end: datetime) -> list[LogicalGapRow]:
        """Per database: the longest time between two verified logical
        backups ending in the period."""
        return self._rows(LogicalGapRow, LOGICAL_GAP_SQL, start=start, end=end)

    def kpi_inspections(
        self,
        start: datetime,
        end: datetime,
        tz: str,
        deadline: str = "08:00",
        dag_id: str = "daily_inspection",
    ) -> InspectionKpiRow:
        """Local days with a (non-backfill) inspection run, and how many
        finished before ``deadline``."""
        return self._rows(
            InspectionKpiRow,
            INSPECTIONS_SQL,
            start=start,
            end=end,
            tz=tz,
            deadline=deadline,
            dag_id=dag_id,
        )[0]

    def kpi_changes(self, start: datetime, end: datetime) -> ChangeKpiRow:
        """Changes that ended in the period by outcome, and the recovery time of reverted ones."""
        return self._rows(ChangeKpiRow, CHANGES_SQL, start=start, end=end)[0]

    def kpi_operators(self, start: datetime, end: datetime) -> list[OperatorKpiRow]:
        """Attributable work per person: incident acknowledgements (and their MTTA), changes."""
        return self._rows(OperatorKpiRow, OPERATORS_SQL, start=start, end=end)


class ReportArchive(Statements):
    """KPI reports and evidence packs written, and the period exports the evidence pack holds
    (mixed into CatalogRepository)."""

    def record_kpi_report(
        self,
        period_start: datetime,
        period_end: datetime,
        label: str,
        path: str,
        sha256: str,
        summary: dict[str, Any],
        dag_run_id: str | None = None,
    ) -> int:
        from sqlalchemy import insert

        from hisops.catalog import tables as T

        t = T.kpi_report
        return self._scalar(
            insert(t)
            .values(
                period_start=period_start,
                period_end=period_end,
                label=label,
                path=path,
                sha256=sha256,
                summary=summary,
                dag_run_id=dag_run_id,
            )
            .returning(t.c.id)
        )

    def kpi_reports(
        self,
        period_start: datetime | None = None,
        period_end: datetime | None = None,
        limit: int = 50,
    ) -> list[KpiReportRecord]:
        """Newest first; with a period: only reports of exactly that period."""
        from sqlalchemy import select

        from hisops.catalog import tables as T

        t = T.kpi_report
        stmt = select(t).order_by(t.c.generated_at.desc(), t.c.id.desc()).limit(limit)
        if period_start is not None and period_end is not None:
            stmt = stmt.where(t.c.period_start == period_start, t.c.period_end == period_end)
        return self._all(KpiReportRecord, stmt)

    def record_evidence_pack(
        self,
        month: str,
        path: str,
        sha256: str,
        size_bytes: int,
        items: list[dict[str, Any]],
        created_by: str,
        dag_run_id: str | None = None,
    ) -> int:
        from sqlalchemy import insert

        from hisops.catalog import tables as T

        t = T.evidence_pack
        return self._scalar(
            insert(t)
            .values(
                month=month,
                path=path,
                sha256=sha256,
                size_bytes=size_bytes,
                items=items,
                created_by=created_by,
                dag_run_id=dag_run_id,
            )
            .returning(t.c.id)
        )

    def evidence_packs(self, limit: int = 50) -> list[EvidencePackRecord]:
        """Evidence packs, newest month first (the newest pack of a month first)."""
        from sqlalchemy import select

        from hisops.catalog import tables as T

        t = T.evidence_pack
        stmt = (
            select(t).order_by(t.c.month.desc(), t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        )
        return self._all(EvidencePackRecord, stmt)

    def get_evidence_pack(self, pack_id: int) -> EvidencePackRecord | None:
        from sqlalchemy import select

        from hisops.catalog import tables as T

        t = T.evidence_pack
        return self._first(EvidencePackRecord, select(t).where(t.c.id == pack_id))

    # --- what one month's evidence pack exports ----------------------------------------------
    def drills_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Restore drills started in [start, end) with their backup's
        database and tier, oldest first."""
        sql = """
            SELECT v.id, v.backup_id, b.database_id, b.system_id, b.kind, v.started_at,
                   v.finished_at,
                   v.ok, v.restore_seconds, v.evidence_path, v.error
            FROM hisops.backup_verification v JOIN hisops.backup b ON b.id = v.backup_id
            WHERE v.started_at >= :start AND v.started_at < :end ORDER BY v.started_at, v.id"""
        return self._dicts(sql, start=start, end=end)

    def audit_events_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Audit events in [start, end), oldest first (the plain export)."""
        sql = """SELECT id, at, actor, action, target, result, details, dag_id, run_id
                 FROM hisops.audit_event WHERE at >= :start AND at < :end ORDER BY at, id"""
        return self._dicts(sql, start=start, end=end)

    def changes_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Changes requested or finished in [start, end), oldest first, with their steps."""
        sql = """
            SELECT c.*, coalesce((SELECT jsonb_agg(to_jsonb(s) - 'change_id' ORDER BY s.id)
                                  FROM hisops.change_step s
                                  WHERE s.change_id = c.id), '[]'::jsonb) AS steps
            FROM hisops.change_record c
            WHERE (c.requested_at >= :start AND c.requested_at < :end)
               OR (c.finished_at >= :start AND c.finished_at < :end)
            ORDER BY c.requested_at, c.id"""
        return self._dicts(sql, start=start, end=end)

    def inspection_runs_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        sql = """SELECT id, dag_id, run_id, logical_date, started_at, finished_at, state,
                  report_path
                 FROM hisops.inspection_run
                 WHERE coalesce(logical_date, started_at) >= :start
                         AND coalesce(logical_date, started_at) < :end
                 ORDER BY coalesce(logical_date, started_at), id"""
        return self._dicts(sql, start=start, end=end)

    def _dicts(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                {k: _float(v) for k, v in row._mapping.items()}
                for row in conn.execute(text(sql), params)
            ]
