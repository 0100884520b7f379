"""可信备份 Catalog and storage agree: which backup can really be restored from.

The catalog can believe in a backup whose files are gone (a directory deleted by hand, a disk
replaced, a pgBackRest repository expired). Everything that relies on "the last verified backup" —
retention, the restore choice, the inspection's backup-age check, the maintenance gate — asks
:func:`last_restorable` instead of the catalog alone:

- the newest *verified* backup (not deleted) whose storage is checked now, cheaply: the backup
  directory and ``manifest.json`` exist, the manifest's SHA-256 is the one the catalog recorded, and
  every file the catalog's copy of the manifest lists exists with its recorded size (no reading of
  data: ``stat`` only). Physical backups are asked of pgBackRest (``hisops.pitr``).
- a backup whose files vanished becomes ``missing`` (``damaged`` when they are there but differ:
  state ``failed``), with an audit event, an incident ``backup.storage`` on the database and a
  notification; it is never again "last verified", and the next older one is checked.

``check_storage`` is the pure part (no catalog writes), used by the daily reconcile too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hisops.backup.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from hisops.catalog.records import BackupRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.notify.channels import Channel

log = logging.getLogger(__name__)

CHECK_ID = "backup.storage"
MARK_ACTION = "backup_mark_missing"
Verdict = Literal["present", "missing", "damaged"]


@dataclass(frozen=True)
class StorageCheck:
    """What storage says about one catalogued backup."""

    backup_id: int
    verdict: Verdict
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.verdict == "present"

    @property
    def summary(self) -> str:
        return "; ".join(self.problems[:5]) + (
            f" (+{len(self.problems) - 5})" if len(self.problems) > 5 else ""
        )


# --- checking (pure) --------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_files(record: BackupRecord) -> StorageCheck:
    """Directory, manifest (SHA-256 as catalogued) and every listed file with its size."""
    ident = record.id
    if not record.path:
        return StorageCheck(
            ident, "missing", (f"备份 #{ident} 没有路径 has no path in the catalog",)
        )
    root = Path(record.path)
    if not root.is_dir():
        return StorageCheck(ident, "missing", (f"备份目录不存在 backup directory is gone: {root}",))
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        return StorageCheck(ident, "missing", (f"清单不存在 manifest is gone: {manifest}",))
    problems: list[str] = []
    if record.manifest_sha256 and _sha256(manifest) != record.manifest_sha256:
        problems.append(
            f"清单与目录库记录不符 manifest differs from the catalogued one: {manifest}"
        )
    gone: list[str] = []
    for entry in (record.manifest or {}).get("files", []):
        path = root / str(entry.get("path", ""))
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            gone.append(f"文件缺失 missing file: {entry.get('path')}")
            continue
        if entry.get("size") is not None and size != entry["size"]:
            problems.append(
                f"文件大小不符 size mismatch: {entry.get('path')} ({size} ≠ {entry['size']} bytes)"
            )
    if gone:
        return StorageCheck(ident, "missing", tuple(gone + problems))
    return StorageCheck(ident, "damaged" if problems else "present", tuple(problems))


def check_storage(record: BackupRecord) -> StorageCheck:
    """Storage check for any kind (physical → its pgBackRest repository,
    ``hisops.pitr.service``)."""
    if record.kind == "physical":
        from hisops.pitr.service import check_record

        return check_record(record)
    return check_files(record)


# --- recording --------------------------------------------------------------------------------


def _finding(record: BackupRecord, check: StorageCheck) -> Any:
    from hisops.catalog.records import FindingRecord

    what_zh = "文件已丢失" if check.verdict == "missing" else "文件已损坏"
    what_en = "files vanished" if check.verdict == "missing" else "files are damaged"
    return FindingRecord(
        CHECK_ID,
        "database",
        record.database_id,
        "critical",
        f"备份 #{record.id} {what_zh}，不再作为可恢复备份：{check.summary}"[:500],
        f"backup #{record.id}: {what_en}; it no longer counts as restorable: {check.summary}"[:500],
        system_id=record.system_id,
        value_text=check.verdict,
        suggestion_zh="查明存储为何丢失/改动文件（误删、换盘、挂载失败）；"
        "立即触发 db_backup 做一次新备份并演练。",
        suggestion_en="Find out why storage lost or changed the files (deleted by hand, replaced "
        "disk, unmounted volume); trigger db_backup now and let the drill verify the new backup.",
        details={
            "backup_id": record.id,
            "path": record.path,
            "problems": list(check.problems[:20]),
        },
    )


def record_vanished(
    repo: CatalogRepository,
    record: BackupRecord,
    check: StorageCheck,
    *,
    channels: Sequence[Channel] | None = None,
    actor: str = "hisops",
    dag_id: str | None = None,
    run_id: str | None = None,
) -> bool:
    """Mark ``missing`` (or ``failed`` when damaged), audit, incident, notify. False if someone
    else already moved the backup (nothing recorded twice)."""
    from hisops.storage.marker import require_visible

    require_visible(
        repo, Path(record.path)
    )  # raises StorageMismatch: the whole storage is not here
    reason = f"{check.verdict}: {check.summary}"[:2000]
    if check.verdict == "missing":
        moved = repo.mark_backup_missing(record.id, reason)
    else:
        moved = record.state in ("completed", "verified")
        if moved:
            repo.mark_backup_verification_failed(record.id, reason)
    if not moved:
        return False
    log.error("备份 #%s (%s) %s: %s", record.id, record.database_id, check.verdict, check.summary)
    repo.add_audit_event(
        actor=actor,
        action=MARK_ACTION,
        target=record.database_id,
        result="success",
        details={
            "backup_id": record.id,
            "previous_state": record.state,
            "kind": record.kind,
            "verdict": check.verdict,
            "path": record.path,
            "problems": list(check.problems[:20]),
        },
        dag_id=dag_id,
        run_id=run_id,
    )
    change = repo.upsert_incident_for(_finding(record, check), None)
    _notify(record, check, change, channels)
    return True


def _notify(
    record: BackupRecord, check: StorageCheck, change: Any, channels: Sequence[Channel] | None
) -> None:
    if not channels:
        log.warning(
            "未配置通知渠道，备份丢失未通知 no channels given: backup #%s not notified", record.id
        )
        return
    from hisops.notify import send

    title = f"备份文件丢失 Backup files vanished · {record.database_id} · 备份 backup #{record.id}"
    lines = [
        f"数据库 database: {record.database_id}; "
        f"备份 backup #{record.id} ({record.kind}, was {record.state})",
        f"路径 path: {record.path}",
        *[f"- {p}" for p in check.problems[:10]],
        f"事件 incident: #{change.incident.id if change else '—'}",
        "该备份已标记为 missing，不再作为“最近已校验备份”。",
        "It is marked missing and never again counts as the last verified backup.",
    ]
    send(channels, title, "\n".join(lines), severity="critical")


# --- the question everyone asks ---------------------------------------------------------------


def last_restorable(
    repo: CatalogRepository,
    inventory: Inventory,
    database_id: str,
    max_age: timedelta | None = None,
    *,
    channels: Sequence[Channel] | None = None,
    kinds: tuple[str, ...] = ("database",),
    actor: str = "hisops",
    dag_id: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> BackupRecord | None:
    """The newest verified backup of ``database_id`` whose manifest and files exist (None if none,
    or if it finished longer than ``max_age`` ago). Vanished ones met on the way are recorded
    (``missing``, audit, incident, notification) and skipped. ``inventory`` is the inventory the
    caller works with (kept in the signature for the tiers that need it: physical backups of the
    database's server)."""
    del inventory  # the logical tier needs nothing from it; the signature is shared with callers
    for record in repo.backups_for(database_id, states=("verified",)):
        if record.kind not in kinds:
            continue
        check = check_storage(record)
        if check.ok:
            return record if _fresh(record, max_age, now) else None
        record_vanished(
            repo, record, check, channels=channels, actor=actor, dag_id=dag_id, run_id=run_id
        )
    return None


def _fresh(record: BackupRecord, max_age: timedelta | None, now: datetime | None) -> bool:
    if max_age is None:
        return True
    finished = record.finished_at or record.started_at
    return finished >= (now or datetime.now(UTC)) - max_age


def ensure_present(repo: CatalogRepository, record: BackupRecord, **record_kw: Any) -> StorageCheck:
    """Check one backup before using it (restore of a chosen id, a drill); records it if
    vanished."""
    check = check_storage(record)
    if not check.ok and record.state in ("completed", "verified"):
        record_vanished(repo, record, check, **record_kw)
    return check
