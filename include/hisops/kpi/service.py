"""运维考核月报 service: build the figures, render, save (0600), record, audit, mail supervisors."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.kpi.files import write_private

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.kpi.period import Period
    from hisops.notify import Channel
    from hisops.runinfo import RunInfo

log = logging.getLogger(__name__)

ACTION = "kpi.report"
EMAIL = "email"


@dataclass(frozen=True)
class KpiOutcome:
    report_id: int
    path: str
    sha256: str
    label: str
    has_data: bool
    sent: list[str]
    failed: dict[str, str]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def report_path(inventory: Inventory, period: Period) -> Path:
    """reports.path/kpi/kpi-<label>.html (ad-hoc labels made file-name safe)."""
    safe = period.label.replace(" – ", "_").replace(" ", "")
    return inventory.resolve_path(inventory.reports.path) / "kpi" / f"kpi-{safe}.html"


def mail_channels(channels: list[Channel]) -> list[Channel]:
    """The report is a record for supervisors: every e-mail channel gets it, whatever its
    min_severity; chat robots are for alerts and are left out."""
    return [dataclasses.replace(ch, min_severity="ok") for ch in channels if ch.kind == EMAIL]


def run_kpi_report(
    repo: CatalogRepository,
    inventory: Inventory,
    period: Period,
    run: RunInfo,
    channels: list[Channel],
    now: datetime | None = None,
) -> KpiOutcome:
    """Build → render → save → record → audit → mail. A period without data still gets a report
    that says so. Raises when e-mail channels exist and none accepted the report."""
    from hisops.kpi.figures import build_report
    from hisops.notify import send
    from hisops.report.kpi import kpi_subject, kpi_text, render_kpi_report

    report = build_report(repo, inventory, period, now or datetime.now(UTC))
    html = render_kpi_report(report)
    path = report_path(inventory, period)
    sha = write_private(path, html.encode("utf-8"))
    report_id = repo.record_kpi_report(
        period.start,
        period.end,
        period.label,
        str(path),
        sha,
        report.summary(),
        dag_run_id=run.run_id,
    )
    log.info(
        "运维考核月报 KPI report #%s %s written: %s (%d KB)%s",
        report_id,
        period.label,
        path,
        len(html) // 1024,
        "" if report.has_data else " — 本期无数据 no data",
    )
    result = send(
        mail_channels(channels),
        kpi_subject(report),
        kpi_text(report, str(path)),
        severity="ok",
        html=html,
    )
    delivered = not result.failed or bool(result.sent)
    repo.add_audit_event(
        run.actor,
        ACTION,
        f"kpi:{period.label}",
        "success" if delivered else "failure",
        details={
            "report_id": report_id,
            "path": str(path),
            "sha256": sha,
            "sent": result.sent,
            "failed": result.failed,
            **report.summary(),
        },
        **run.audit_fields(),
    )
    if not delivered:
        raise RuntimeError(
            f"KPI report reached no supervisor mailbox 未能送达主管: {result.failed} "
            f"(the report is saved: {path})"
        )
    return KpiOutcome(
        report_id, str(path), sha, period.label, report.has_data, result.sent, result.failed
    )


def period_for_run(
    inventory: Inventory,
    run: RunInfo,
    month: str | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
) -> Period:
    """The run's period: the Params when given, else the month before the run's date (the
    scheduled run on the 1st reports the previous month)."""
    from hisops.kpi.period import parse

    reference = run.logical_date or run.run_after or now or datetime.now(UTC)
    return parse(month, start, end, inventory.timezone, reference)
