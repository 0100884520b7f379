"""目录库与存储对账 Daily reconcile: catalog and storage compared both ways, for both tiers.

- catalog rows without files: every ``completed``/``verified`` backup (not deleted) is checked with
  :func:`hisops.backup.trust.check_storage`; vanished ones become ``missing`` (audit event, incident
  ``backup.storage``, notification), damaged ones ``failed``;
- directories without catalog rows: a published backup directory whose id the catalog does not
  know for that target, or knows as deleted, is an orphan: finding/incident ``backup.orphan``
  (warn) and an audit event. Orphans are never deleted automatically — someone must look (it may
  be a restored copy of an old backup, or a retention run that died between deleting and
  recording).
- physical tier: rows are checked against their pgBackRest repository (``hisops.pitr.service``);
  labels the catalog lacks are found by ``pitr.service.sync_catalog`` (``pgbackrest info``), which
  the reconcile task runs for every server with a ``pitr:`` block and passes in as
  ``physical_orphans``.

The incident ``backup.storage`` of a database is resolved once a restorable verified backup newer
than every missing one exists (the resolution note names it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.backup import storage, trust

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.notify.channels import Channel

log = logging.getLogger(__name__)
ORPHAN_CHECK_ID = "backup.orphan"
ACTION = "backup_reconcile"


@dataclass
class TargetReconcile:
    """Result for one target (database, host or PostgreSQL server)."""

    kind: str
    target_id: str
    system_id: str | None
    checked: int = 0
    vanished: list[int] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target_id": self.target_id,
            "checked": self.checked,
            "vanished": self.vanished,
            "orphans": self.orphans,
        }


def targets(inventory: Inventory) -> list[tuple[str, str, str | None, Path | None]]:
    """(kind, target id, system id, storage root or None) for every backed-up thing."""
    base = inventory.resolve_path(inventory.backup_storage.path)
    out: list[tuple[str, str, str | None, Path | None]] = [
        ("database", db.id, s.id, storage.target_root(base, db.id))
        for s, db in inventory.all_databases()
    ]
    out += [
        ("files", h.id, s.id, storage.target_root(base, h.id, "files"))
        for s, h in inventory.all_hosts()
        if h.backup_paths
    ]
    out += [("physical", srv.id, s.id, None) for s, srv in _servers(inventory)]
    return out


def _servers(inventory: Any) -> list[tuple[Any, Any]]:
    finder = getattr(inventory, "all_servers", None)
    return [(s, srv) for s, srv in finder() if getattr(srv, "pitr", None)] if finder else []


def orphan_dirs(repo: CatalogRepository, root: Path, target_id: str) -> list[str]:
    """Published backup directories under ``root`` the catalog does not know as live backups."""
    live = {b.id: b for b in repo.backups_for(target_id, include_deleted=True)}
    out = []
    for ident, path in sorted(storage.backup_dirs(root).items()):
        record = live.get(ident)
        if record is None:
            out.append(f"目录库中没有该备份 not in the catalog: {path}")
        elif record.deleted_at is not None:
            out.append(f"目录库记为已删除但文件仍在 deleted in the catalog, files remain: {path}")
        elif record.path and Path(record.path).resolve() != path.resolve():
            out.append(f"目录库路径不同 catalog path differs ({record.path}): {path}")
    return out


def reconcile_target(
    repo: CatalogRepository,
    inventory: Inventory,
    kind: str,
    target_id: str,
    system_id: str | None,
    root: Path | None,
    **record_kw: Any,
) -> TargetReconcile:
    result = TargetReconcile(kind, target_id, system_id)
    for record in repo.backups_for(target_id, states=("completed", "verified")):
        if record.kind != kind:
            continue
        result.checked += 1
        check = trust.check_storage(record)
        if not check.ok and trust.record_vanished(repo, record, check, **record_kw):
            result.vanished.append(record.id)
    if root is not None:
        result.orphans = orphan_dirs(repo, root, target_id)
    return result


def _orphan_finding(r: TargetReconcile) -> Any:
    from hisops.catalog.records import FindingRecord

    target_kind = "host" if r.kind == "files" else "database"
    if not r.orphans:
        return FindingRecord(
            ORPHAN_CHECK_ID,
            target_kind,
            r.target_id,
            "ok",
            "目录库与存储一致",
            "catalog and storage agree",
            system_id=r.system_id,
        )
    return FindingRecord(
        ORPHAN_CHECK_ID,
        target_kind,
        r.target_id,
        "warn",
        f"存储中有 {len(r.orphans)} 个目录库不认识的备份：{r.orphans[0]}"[:500],
        f"{len(r.orphans)} backup(s) in storage unknown to the catalog: {r.orphans[0]}"[:500],
        system_id=r.system_id,
        value=float(len(r.orphans)),
        suggestion_zh="确认这些目录的来历；确属无用再手工删除（hisops 不会自动删除）。",
        suggestion_en="Find out where these came from; delete by hand only if they are really "
        "unneeded (hisops never deletes them automatically).",
        details={"orphans": r.orphans[:50]},
    )


def _storage_resolution(repo: CatalogRepository, inventory: Inventory, r: TargetReconcile) -> Any:
    """An ok finding for ``backup.storage`` once a restorable backup newer than every missing one
    exists."""
    from hisops.catalog.records import FindingRecord

    missing = [b for b in repo.backups_for(r.target_id, states=("missing",)) if b.kind == r.kind]
    if r.vanished or not missing:
        return None
    good = trust.last_restorable(repo, inventory, r.target_id, kinds=(r.kind,))
    if good is None or good.started_at <= max(b.started_at for b in missing):
        return None
    ids = ", ".join(f"#{b.id}" for b in missing[:10])
    return FindingRecord(
        trust.CHECK_ID,
        "database",
        r.target_id,
        "ok",
        f"已有可恢复的已校验备份 #{good.id}（丢失的 {ids} 仍为 missing）",
        f"restorable verified backup #{good.id} exists (vanished {ids} stay missing)",
        system_id=r.system_id,
        details={"backup_id": good.id},
    )


def reconcile(
    repo: CatalogRepository,
    inventory: Inventory,
    *,
    channels: Sequence[Channel] | None = None,
    actor: str = "hisops",
    dag_id: str | None = None,
    run_id: str | None = None,
    physical_orphans: dict[str, list[str]] | None = None,
) -> list[TargetReconcile]:
    """Reconcile every target of the inventory; findings fold into incidents; one audit event.
    ``physical_orphans``: per server, what ``pitr.service.sync_catalog`` found (the caller ran
    it)."""
    record_kw = {"channels": channels, "actor": actor, "dag_id": dag_id, "run_id": run_id}
    results = []
    for kind, target_id, system_id, root in targets(inventory):
        r = reconcile_target(repo, inventory, kind, target_id, system_id, root, **record_kw)
        if kind == "physical":
            r.orphans = list((physical_orphans or {}).get(target_id, []))
        repo.upsert_incident_for(_orphan_finding(r), None)
        resolution = _storage_resolution(repo, inventory, r) if kind != "files" else None
        if resolution is not None:
            repo.upsert_incident_for(resolution, None)
        for line in r.orphans:
            log.warning("%s %s: %s", kind, target_id, line)
        results.append(r)
    repo.add_audit_event(
        actor=actor,
        action=ACTION,
        target="backup_storage",
        result="success",
        details={
            "targets": [r.as_dict() for r in results if r.vanished or r.orphans],
            "checked": sum(r.checked for r in results),
        },
        dag_id=dag_id,
        run_id=run_id,
    )
    return results


def describe(results: Sequence[TargetReconcile]) -> str:
    vanished = sum(len(r.vanished) for r in results)
    orphans = sum(len(r.orphans) for r in results)
    return (
        f"对账 reconcile: {sum(r.checked for r in results)} backups checked, "
        f"{vanished} vanished → missing, {orphans} orphan(s) in storage"
    )
