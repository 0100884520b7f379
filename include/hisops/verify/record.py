"""Recording a drill: verification row, backup state, incident, audit event, supervisors' alert.

Who is at fault decides what happens (``hisops.verify.drill.Fault``): a ``backup`` fault marks the
backup failed and is a critical finding; a drill we could not perform (``infrastructure``,
``configuration``) leaves the backup's state alone and is a ``check_error``. A passing drill
resolves the incident, naming backups that stay failed. A job whose files vanished was recorded at
planning (``hisops.verify.plan``) and is only reported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.catalog.records import FindingRecord, IncidentChange
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.notify.channels import Channel
    from hisops.runinfo import RunInfo
    from hisops.severity import Severity

log = logging.getLogger(__name__)

CHECK_ID = "backup.verification"
VERIFY_ACTION = "backup_verification"
MISSING = "missing"  # the fault of a job whose files vanished before the drill
#: result fields kept in the verification row's details
DETAIL_KEYS = (
    "mode",
    "fault",
    "checks_total",
    "checks_failed",
    "failed_checks",
    "amcheck",
    "timings",
    "notes",
    "scratch_db",
    "failures",
)
SUGGESTION_ZH = "查看演练证据页与任务日志；备份本身有问题时尽快重新备份。"
SUGGESTION_EN = (
    "Open the drill's evidence page and task log; if the backup itself is bad, take a new one."
)


def finding_severity(fault: str) -> Severity:
    """The finding of a failed drill: the backup's own fault is critical, ours a check error."""
    return "critical" if fault == "backup" else "check_error"


def alert_severity(fault: str) -> Severity:
    """The alert of a failed drill: critical for the backup's fault, else a warning."""
    return "critical" if fault == "backup" else "warn"


def finding(result: Mapping[str, Any], still_failed: tuple[int, ...] = ()) -> FindingRecord:
    """The ``backup.verification`` finding of one drill (ok resolves; failed opens/updates)."""
    from hisops.catalog.records import FindingRecord

    db, ident = result["database_id"], result["backup_id"]
    if result["ok"]:
        failed = ", ".join(f"#{b}" for b in still_failed) if still_failed else ""
        zh = f"备份 #{ident} 恢复演练通过" + (f"；备份 {failed} 仍为失败" if failed else "")
        en = f"restore drill of backup #{ident} passed" + (
            f"; backups {failed} stay failed" if failed else ""
        )
        return FindingRecord(
            CHECK_ID,
            "database",
            db,
            "ok",
            zh,
            en,
            system_id=result.get("system_id"),
            details={"backup_id": ident, "still_failed": list(still_failed)},
        )
    first = (result["failures"] or [result["fault"]])[0]
    return FindingRecord(
        CHECK_ID,
        "database",
        db,
        finding_severity(result["fault"]),
        f"备份 #{ident} 恢复演练失败：{first}"[:500],
        f"restore drill of backup #{ident} failed ({result['fault']}): {first}"[:500],
        system_id=result.get("system_id"),
        value_text=result["fault"],
        suggestion_zh=SUGGESTION_ZH,
        suggestion_en=SUGGESTION_EN,
        details={
            "backup_id": ident,
            "evidence_path": result.get("evidence_path"),
            "failures": result["failures"][:10],
        },
    )


def mark(repo: CatalogRepository, result: Mapping[str, Any]) -> str:
    """Catalog state of the backup: verified, failed (its fault), or unchanged (we could not
    drill)."""
    from hisops.catalog.repository import BackupStateError

    try:
        if result["ok"]:
            repo.mark_backup_verified(result["backup_id"])
            return "verified"
        if result["fault"] == "backup":
            repo.mark_backup_verification_failed(
                result["backup_id"], (result["error"] or "")[:2000]
            )
            return "failed"
    except BackupStateError as exc:  # e.g. retention deleted it meanwhile: record, do not crash
        log.warning("%s", exc)
        return "unchanged"
    return "unchanged"


def alert_text(result: Mapping[str, Any], incident_id: int | None) -> tuple[str, str]:
    """(title, body) of the supervisors' alert for a failed drill."""
    ident, db = result["backup_id"], result["database_id"]
    title = f"恢复演练失败 Restore drill FAILED · {db} · 备份 backup #{ident}"
    lines = [
        f"数据库 database: {db}; 备份 backup #{ident}; 原因类别 fault: {result['fault']}",
        *[f"- {line}" for line in result["failures"][:10]],
        f"证据 evidence: {result.get('evidence_path')}",
        f"事件 incident: #{incident_id if incident_id is not None else '—'}",
        "该备份不会被计为“最近已校验备份”。This backup never counts as the last verified backup.",
    ]
    return title, "\n".join(lines)


def notify_failure(
    result: Mapping[str, Any],
    incident: IncidentChange | None,
    channels: Sequence[Channel],
    *,
    expected: bool,
) -> dict[str, Any]:
    """Tell the supervisors; ``expected``: the inventory has channels, so silence is logged as an
    error (never raised: a retry would record the drill again)."""
    from hisops.notify import send

    incident_id = incident.incident.id if incident else None
    title, body = alert_text(result, incident_id)
    sent = send(channels, title, body, severity=alert_severity(result["fault"]))
    if expected and not sent.sent:
        log.error(
            "演练失败告警未送达任何主管 the drill-failure alert reached no supervisor: %s",
            sent.failed,
        )
    return {"sent": sent.sent, "failed": sent.failed}


def _missing_outcome(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "backup_id": result["backup_id"],
        "database_id": result["database_id"],
        "ok": False,
        "fault": MISSING,
        "verification_id": None,
        "backup_state": MISSING,
        "incident": None,
        "notified": {},
        "summary": result["failures"][0],
    }


def record_drill(
    repo: CatalogRepository,
    inventory: Inventory,
    result: Mapping[str, Any],
    run: RunInfo,
    channels: Sequence[Channel] = (),
) -> dict[str, Any]:
    """Catalog: verification row (evidence, RTO), backup state, incident; audit event;
    supervisors told on failure. Returns the small outcome the verdict reads."""
    if result["fault"] == MISSING:  # already recorded by the storage check at planning
        return _missing_outcome(result)
    verification_id = repo.add_verification(
        result["backup_id"],
        result["ok"],
        started_at=datetime.fromisoformat(result["started_at"]),
        finished_at=datetime.fromisoformat(result["finished_at"]),
        restore_seconds=result["restore_seconds"],
        evidence_path=result["evidence_path"],
        details={k: result[k] for k in DETAIL_KEYS},
        error=result["error"],
    )
    state = mark(repo, result)
    failed = tuple(
        b.id
        for b in repo.backups_for(result["database_id"], states=("failed",))
        if b.kind == "database"
    )
    incident = repo.upsert_incident_for(finding(result, failed), None)
    notified = (
        {}
        if result["ok"]
        else notify_failure(result, incident, channels, expected=bool(inventory.notifications))
    )
    repo.add_audit_event(
        actor=run.actor,
        action=VERIFY_ACTION,
        target=result["database_id"],
        result="success" if result["ok"] else "failure",
        details={
            "backup_id": result["backup_id"],
            "verification_id": verification_id,
            "backup_state": state,
            "evidence_path": result["evidence_path"],
            "restore_seconds": result["restore_seconds"],
        },
        **run.audit_fields(),
    )
    return {
        "backup_id": result["backup_id"],
        "database_id": result["database_id"],
        "ok": result["ok"],
        "fault": result["fault"],
        "verification_id": verification_id,
        "backup_state": state,
        "incident": incident.action if incident else None,
        "notified": notified,
        "summary": (result["failures"] or ["ok"])[0],
    }


def verdict(records: Sequence[Mapping[str, Any]]) -> str:
    """The run's conclusion: raises naming every failed drill, else says what was verified."""
    failed = [r for r in records if not r["ok"]]
    if failed:
        raise RuntimeError(
            "恢复演练未通过 restore drill failed: "
            + "; ".join(
                f"{r['database_id']} #{r['backup_id']} ({r['fault']}): {r['summary']}"
                for r in failed
            )[:3000]
        )
    if not records:
        return "没有需要演练的备份 no backup to drill"
    return "; ".join(f"{r['database_id']} #{r['backup_id']} 已校验 verified" for r in records)
