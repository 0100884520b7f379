"""End of a cleanup run: alerts, the 保留清理报告, the audit event, the notification."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hisops.report import cleanup as report

if TYPE_CHECKING:
    from hisops.catalog.records import CleanupStepRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.notify import Channel
    from hisops.runinfo import RunInfo

ACTION = "retention_cleanup"


def _warn_level(inventory: Inventory, host_id: str) -> float | None:
    try:
        host = inventory.find_host(host_id)
    except KeyError:
        host = None
    return inventory.thresholds_for(host).filesystem_used_pct.warn


def alerts_for(inventory: Inventory, steps: Sequence[CleanupStepRecord]) -> list[str]:
    """Protected path hit, failed steps, and filesystems above warn where cleanup freed nothing."""
    out = []
    for s in steps:
        if s.state == "protected":
            out.append(f"触及受保护路径 Protected path hit — {s.target}/{s.item}: {s.reason}")
        elif s.state == "failed":
            out.append(f"失败 Failed — {s.target}/{s.item}: {s.reason}")
    freed: dict[tuple[str, str], int] = defaultdict(int)
    used: dict[tuple[str, str], float] = {}
    for s in steps:
        for fs in s.details.get("filesystems", []):
            key = (s.target, fs["mount"])
            freed[key] += s.bytes_freed
            used[key] = fs["used_pct"]
    for (host_id, mount), pct in sorted(used.items()):
        warn = _warn_level(inventory, host_id)
        if warn is not None and pct >= warn and freed[(host_id, mount)] == 0:
            out.append(
                f"清理未释放空间 Cleanup freed nothing — {host_id}:{mount} 使用率 used {pct:.0f}% "
                f"≥ 警告 warn {warn:.0f}%：请检查规则或扩容 check the rules or add space"
            )
    return out


def finish_run(
    repo: CatalogRepository,
    inventory: Inventory,
    cleanup_run_id: int,
    run: RunInfo,
    channels: Sequence[Channel] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Render and save the report, close the run, audit it, notify
    when there is something to say."""
    record = repo.get_cleanup_run(cleanup_run_id)
    if record is None:
        raise ValueError(f"cleanup run {cleanup_run_id} does not exist")
    steps = repo.cleanup_steps(cleanup_run_id)
    data = report.CleanupReport(
        hospital=inventory.hospital,
        run_id=run.run_id,
        cleanup_run_id=cleanup_run_id,
        dry_run=record.dry_run,
        timezone=inventory.timezone,
        generated_at=now or datetime.now(UTC),
        steps=steps,
        files=repo.cleanup_files(cleanup_run_id, ["failed", "skipped"], limit=report.MAX_FILES),
        alerts=alerts_for(inventory, steps),
    )
    path = report.save(report.render(data), inventory.resolve_path(inventory.reports.path), data)
    summary = {
        "bytes_freed": data.bytes_freed,
        "rows_pruned": data.rows_pruned,
        "skipped": data.skipped,
        "failed": data.failed,
        "alerts": list(data.alerts),
        "per_rule": {f"{s.target}/{s.item}": s.bytes_freed for s in steps if s.scope == "host"},
        "per_table": {
            f"{s.scope}/{s.item}": s.rows for s in steps if s.scope in ("catalog", "airflow")
        },
    }
    state = "failed" if data.failed else "success"
    repo.finish_cleanup_run(cleanup_run_id, state, str(path), summary)
    repo.add_audit_event(
        run.actor,
        ACTION,
        None,
        "failure" if data.failed else "success",
        details={"cleanup_run_id": cleanup_run_id, "dry_run": record.dry_run, **summary},
        **run.audit_fields(),
    )
    delivered = None
    if data.alerts and channels:
        from hisops.notify import send

        severity = "critical" if any(s.state == "protected" for s in steps) else "warn"
        result = send(
            channels,
            report.subject(data),
            report.text_summary(data, str(path)),
            severity=severity,
            html=report.render(data),
        )
        delivered = {"sent": result.sent, "failed": result.failed}
    return {
        "cleanup_run_id": cleanup_run_id,
        "report": str(path),
        "state": state,
        "alerts": len(data.alerts),
        "bytes_freed": data.bytes_freed,
        "rows_pruned": data.rows_pruned,
        "notified": delivered,
    }
