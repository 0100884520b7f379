"""The 巡检报告 of one inspection run: what goes in it, where it is saved, how it is recorded.

The service records for itself: the run is finished in the catalog with the report's path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.catalog.records import MetricSample
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.report import ReportData, SystemInfo

log = logging.getLogger(__name__)

TREND_WINDOW = timedelta(days=7)
MAIL_INLINE_LIMIT = 200_000  # bytes of HTML; a bigger report is mailed as summary + attachment


def system_infos(inv: Inventory, system_ids: Sequence[str]) -> list[SystemInfo]:
    """The report's view of each inspected system: names, owner and its targets."""
    from hisops.report import SystemInfo

    infos = []
    for sid in system_ids:
        s = inv.find_system(sid)
        targets = (
            [("database", d.id) for d in s.databases]
            + [("host", h.id) for h in s.hosts]
            + [("endpoint", e.id) for e in s.endpoints]
        )
        infos.append(SystemInfo(s.id, s.name, s.name_en, s.owner, tuple(targets)))
    return infos


def trend_keys(inv: Inventory, infos: Sequence[SystemInfo]) -> list[tuple[str, str]]:
    """(target id, metric) pairs of the key metrics of every inspected target."""
    from hisops.report.render import trend_metrics

    keys = []
    for info in infos:
        for kind, target_id in info.targets:
            paths = inv.find_host(target_id).disk_paths if kind == "host" else ()
            keys += [(target_id, m) for m in trend_metrics(kind, paths)]
    return keys


def trend_samples(
    repo: CatalogRepository, keys: Sequence[tuple[str, str]], end: datetime
) -> list[MetricSample]:
    """Samples of ``keys`` over the trend window ending at ``end`` (later samples left out)."""
    since = end - TREND_WINDOW - timedelta(days=1)
    return [
        s
        for target_id, metric in keys
        for s in repo.metric_series(target_id, metric, since=since)
        if s.observed_at <= end
    ]


def report_data(
    repo: CatalogRepository,
    inv: Inventory,
    run: Mapping[str, Any],
    outcomes: Sequence[Mapping[str, Any]],
    run_id: str,
    logical_date: datetime | None,
    period: tuple[datetime | None, datetime | None],
) -> ReportData:
    """Everything the report shows; ``run`` is :func:`hisops.inspect.service.run_of` of the plan."""
    from hisops.report import ReportData

    run_pk = run["inspection_run_id"]
    infos = system_infos(inv, run["systems"])
    now = datetime.now().astimezone()
    # the day the report is for: the day it runs, unless historical (then the day the run was due)
    due = repo.get_inspection_run(run_pk).logical_date or logical_date
    report_for = due if run["historical"] else None
    end = report_for or now
    return ReportData(
        hospital=inv.hospital,
        timezone=inv.timezone,
        run_id=run_id,
        generated_at=now,
        systems=infos,
        findings=repo.findings_for(run_pk),
        open_incidents=repo.open_incidents(),
        changes=[c for o in outcomes for c in o.get("changes", [])],
        samples=trend_samples(repo, trend_keys(inv, infos), end),
        logical_date=report_for,
        period_start=period[0],
        period_end=period[1],
        historical=run["historical"],
        inspection_run_id=run_pk,
    )


def write_report(
    repo: CatalogRepository,
    inv: Inventory,
    plan: Sequence[Mapping[str, Any]],
    outcomes: Sequence[Mapping[str, Any]],
    run_id: str,
    logical_date: datetime | None,
    period: tuple[datetime | None, datetime | None],
    folder: Path,
) -> dict[str, Any]:
    """Render the 巡检报告 of the run of ``plan`` (the work orders), save it (0600) under
    ``folder/<day>/``, finish the run in the catalog with its path. A report too big to read in a
    mail gets a summary variant for the mail body (saved beside it). Returns what sending it
    needs (paths, counts, subject, text summary)."""
    from hisops.inspect.service import run_of
    from hisops.report import (
        render_report,
        report_day,
        save_report,
        severity_counts,
        subject,
        text_summary,
    )

    data = report_data(repo, inv, run_of(plan), outcomes, run_id, logical_date, period)
    day = report_day(data)
    html = render_report(data)
    path = save_report(html, folder, day, run_id)
    mail = path
    if len(html.encode("utf-8")) > MAIL_INLINE_LIMIT:
        mail = save_report(render_report(data, summary_only=True), folder, day, f"{run_id}-mail")
    repo.finish_inspection_run(data.inspection_run_id, "success", report_path=str(path))
    counts = dict(severity_counts(data.findings))
    log.info(
        "巡检报告 report written: %s (%d KB) — %s, open incidents %d",
        path,
        len(html) // 1024,
        counts,
        len(data.open_incidents),
    )
    return {
        "path": str(path),
        "mail_html": str(mail),
        "counts": counts,
        "open_incidents": len(data.open_incidents),
        "subject": subject(data),
        "summary": text_summary(data, str(path)),
    }
