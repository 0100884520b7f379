"""运维考核指标 — the KPI figures of one period, computed from the catalog's aggregates.

PostgreSQL aggregates (``CatalogRepository.kpi_*``); this module only combines a few dozen
aggregate rows into rates with their numerator and denominator, so a rate without data is
"no data", never a division by zero.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hisops.kpi.period import Period, scheduled_days

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.catalog.repository_kpi import (
        AvailabilityRow,
        ChangeKpiRow,
        InspectionKpiRow,
        LogicalGapRow,
        OperatorKpiRow,
        PitrKpiRow,
        RtoPoint,
    )
    from hisops.inventory.models import Inventory

INSPECTION_DEADLINE = "08:00"  # clinics open at 08:00: the daily inspection must be done before
NO_DATA = "无数据 no data"
DOWN_TARGETS = 10  # targets listed as most often found down


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator, ``None`` when there is nothing to divide (no data)."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return None if self.denominator <= 0 else self.numerator / self.denominator

    @property
    def pct(self) -> float | None:
        return None if self.value is None else round(100 * self.value, 2)

    def text(self) -> str:
        if self.pct is None:
            return NO_DATA
        return f"{self.pct:.2f}% ({self.numerator}/{self.denominator})"


@dataclass(frozen=True)
class SystemKpi:
    system_id: str
    name: str
    name_en: str
    availability: Ratio
    excluded_checks: int
    incidents: int
    critical_incidents: int
    mtta_s: float | None
    mttr_s: float | None
    backups: Ratio  # verified backup-days / scheduled backup-days
    drills: Ratio
    rto_avg_s: float | None
    rto_max_s: float | None


@dataclass(frozen=True)
class IncidentTotals:
    opened: int = 0
    critical: int = 0
    acknowledged: int = 0
    resolved: int = 0
    mtta_s: float | None = None
    mtta_p50_s: float | None = None
    mttr_s: float | None = None
    mttr_p50_s: float | None = None


@dataclass(frozen=True)
class ChangeKpi:
    success: Ratio  # completed / applied
    failure_rate: Ratio  # failed + reverted + failed revert / applied (DORA change failure rate)
    row: ChangeKpiRow

    @property
    def applied(self) -> int:
        return self.success.denominator


@dataclass(frozen=True)
class KpiReport:
    hospital: str
    period: Period
    generated_at: datetime
    systems: list[SystemKpi]
    availability: Ratio
    excluded_checks: int
    down_targets: list[AvailabilityRow]  # per-target rows, most often down first
    incidents: IncidentTotals
    backups: Ratio
    backups_attempted: int
    backups_failed: int
    drills: Ratio
    rto_p50_s: float | None
    rto_max_s: float | None
    rto_trend: list[RtoPoint]
    pitr: PitrKpiRow
    logical_gaps: list[LogicalGapRow]
    inspection: Ratio  # days finished before the deadline / scheduled days
    inspection_row: InspectionKpiRow
    inspection_missed_days: int
    changes: ChangeKpi
    operators: list[OperatorKpiRow]
    notes: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        """False when the catalog holds nothing at all for the period."""
        return bool(
            self.availability.denominator
            or self.excluded_checks
            or self.incidents.opened
            or self.backups_attempted
            or self.drills.denominator
            or self.inspection_row.days_run
            or self.changes.applied
            or self.changes.row.cancelled
            or self.changes.row.refused
        )

    def summary(self) -> dict[str, Any]:
        """Headline figures (stored with the report in the catalog, shown in lists)."""
        return {
            "period": self.period.label,
            "has_data": self.has_data,
            "availability_pct": self.availability.pct,
            "incidents": self.incidents.opened,
            "mtta_s": self.incidents.mtta_s,
            "mttr_s": self.incidents.mttr_s,
            "backup_success_pct": self.backups.pct,
            "drill_success_pct": self.drills.pct,
            "rto_p50_s": self.rto_p50_s,
            "inspection_punctual_pct": self.inspection.pct,
            "change_success_pct": self.changes.success.pct,
            "changes_applied": self.changes.applied,
        }


# --------------------------------------------------------------------------- building


def _names(inventory: Inventory) -> dict[str, tuple[str, str]]:
    return {s.id: (s.name, s.name_en) for s in inventory.systems}


def _system_ids(inventory: Inventory, *row_lists: list[Any]) -> list[str]:
    """Inventory order first, then systems the catalog knows but the inventory no longer lists."""
    ids = [s.id for s in inventory.systems]
    for rows in row_lists:
        ids += [
            r.system_id for r in rows if not getattr(r, "total", False) and r.system_id not in ids
        ]
    return ids


def build_report(
    repo: CatalogRepository, inventory: Inventory, period: Period, now: datetime
) -> KpiReport:
    """Every figure of the 运维考核月报 for ``period`` (ten aggregate queries, no raw rows)."""
    start, end, tz = period.start, period.end, period.tz
    rows = repo.kpi_availability(start, end)
    availability = [r for r in rows if r.per_system]
    down = sorted(
        (r for r in rows if not r.per_system and r.up < r.checks),
        key=lambda r: (r.up - r.checks, r.target_id),
    )[:DOWN_TARGETS]
    incidents = repo.kpi_incidents(start, end)
    backups = [b for b in repo.kpi_backups(start, end, tz) if b.kind == "database"]
    drills = repo.kpi_drills(start, end)
    inspection_row = repo.kpi_inspections(start, end, tz, INSPECTION_DEADLINE)
    change_row = repo.kpi_changes(start, end)

    backup_days = scheduled_days(inventory.schedules.backup, period)
    dbs_per_system = {s.id: len(s.databases) for s in inventory.systems}
    names = _names(inventory)
    by_sys_avail = {r.system_id: r for r in availability}
    by_sys_inc = {r.system_id: r for r in incidents if not r.total}
    by_sys_drill = {r.system_id: r for r in drills if not r.total}
    systems = []
    for sid in _system_ids(inventory, availability, incidents, drills, backups):
        avail, inc, drill = by_sys_avail.get(sid), by_sys_inc.get(sid), by_sys_drill.get(sid)
        verified_days = sum(b.verified_days for b in backups if b.system_id == sid)
        name, name_en = names.get(sid, (sid or "未归属", sid or "unassigned"))
        systems.append(
            SystemKpi(
                system_id=sid,
                name=name,
                name_en=name_en,
                availability=Ratio(avail.up, avail.checks) if avail else Ratio(0, 0),
                excluded_checks=avail.excluded if avail else 0,
                incidents=inc.opened if inc else 0,
                critical_incidents=inc.critical if inc else 0,
                mtta_s=inc.mtta_s if inc else None,
                mttr_s=inc.mttr_s if inc else None,
                backups=Ratio(
                    min(verified_days, dbs_per_system.get(sid, 0) * backup_days),
                    dbs_per_system.get(sid, 0) * backup_days,
                ),
                drills=Ratio(drill.ok, drill.drills) if drill else Ratio(0, 0),
                rto_avg_s=drill.rto_avg_s if drill else None,
                rto_max_s=drill.rto_max_s if drill else None,
            )
        )

    total_inc = next((r for r in incidents if r.total), None)
    total_drill = next((r for r in drills if r.total), None)
    expected_inspections = scheduled_days(inventory.schedules.inspection, period)
    applied = (
        change_row.completed + change_row.failed + change_row.rolled_back + change_row.failed_revert
    )
    failed = applied - change_row.completed
    notes = []
    if backup_days == 0:
        notes.append("本期内没有计划备份 no scheduled backup in this period")
    report = KpiReport(
        hospital=inventory.hospital,
        period=period,
        generated_at=now,
        systems=systems,
        availability=Ratio(sum(r.up for r in availability), sum(r.checks for r in availability)),
        excluded_checks=sum(r.excluded for r in availability),
        down_targets=down,
        incidents=IncidentTotals(
            **{k: getattr(total_inc, k) for k in IncidentTotals.__dataclass_fields__}
        )
        if total_inc
        else IncidentTotals(),
        backups=Ratio(
            sum(s.backups.numerator for s in systems), sum(s.backups.denominator for s in systems)
        ),
        backups_attempted=sum(b.attempted for b in backups),
        backups_failed=sum(b.failed for b in backups),
        drills=Ratio(total_drill.ok, total_drill.drills) if total_drill else Ratio(0, 0),
        rto_p50_s=total_drill.rto_p50_s if total_drill else None,
        rto_max_s=total_drill.rto_max_s if total_drill else None,
        rto_trend=repo.kpi_rto_trend(start, end, tz, period.trend_bucket),
        pitr=repo.kpi_pitr(start, end),
        logical_gaps=repo.kpi_logical_gaps(start, end)[:10],
        inspection=Ratio(min(inspection_row.punctual, expected_inspections), expected_inspections),
        inspection_row=inspection_row,
        inspection_missed_days=max(0, expected_inspections - inspection_row.finished),
        changes=ChangeKpi(
            success=Ratio(change_row.completed, applied),
            failure_rate=Ratio(failed, applied),
            row=change_row,
        ),
        operators=repo.kpi_operators(start, end),
        notes=notes,
    )
    return report if report.has_data else _nothing_recorded(report)


def _nothing_recorded(report: KpiReport) -> KpiReport:
    """No record at all (e.g. before hisops ran): the schedule-based
    rates say "no data", not 0 %."""
    none = Ratio(0, 0)
    return dataclasses.replace(
        report,
        backups=none,
        inspection=none,
        inspection_missed_days=0,
        systems=[dataclasses.replace(s, backups=none) for s in report.systems],
    )
