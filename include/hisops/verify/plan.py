"""Which backups a restore drill takes, and the job each one gets (plain data for mapped tasks).

A run drills the backup chosen in the form, else those its triggering asset events name, else every
backup not drilled yet (state ``completed``). Each job gets its scratch database name at planning,
so the DAG's teardown can drop it even when the drill's worker was killed. A backup whose files are
gone is recorded here (``missing``, incident, notification, via ``backup.trust``) and its job says
so: the drill reports it instead of restoring.

No Airflow here: the adapter (``hisops.airflow.verify_tasks``) passes the catalog, the inventory,
the run and the notification channels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.catalog.records import BackupRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.notify.channels import Channel
    from hisops.runinfo import RunInfo

log = logging.getLogger(__name__)

#: backup kinds a drill restores (file backups are re-read by file_backup itself)
DRILLED_KINDS = ("database", "physical")
DEFAULT_MODE = "fast"
DEFAULT_PITR_TARGET = "auto"


def backup_ids_from_events(extras: Iterable[Mapping[str, Any] | None]) -> list[int]:
    """Backup ids named by the extras of the run's asset events (each once, drilled kinds only;
    an event without ``kind`` is a database backup)."""
    ids: list[int] = []
    for extra in extras:
        value = (extra or {}).get("backup_id")
        kind = (extra or {}).get("kind", "database")
        if isinstance(value, int) and value not in ids and kind in DRILLED_KINDS:
            ids.append(value)
    return ids


def pending_backup_ids(repo: CatalogRepository, inventory: Inventory) -> list[int]:
    """Every not-yet-drilled (state ``completed``) backup of every inventory database, oldest first.

    What an asset-triggered run drills: Airflow 3.3 attaches no ``consumed_asset_events`` to runs of
    a DAG scheduled by asset *name reference*, so the catalog says what is new. ALL undrilled
    backups are drilled (two backups in quick succession, safety backups of restore_database),
    never only the newest. A backup whose drill could not be performed (infrastructure or
    configuration) stays ``completed`` and is drilled again. Physical backups too: each drill
    restores the whole server, but an older set is what a restore to an earlier point uses."""
    ids: list[int] = []
    targets = [(db.id, "database") for _, db in inventory.all_databases()]
    targets += [(srv.id, "physical") for _, srv in inventory.all_servers() if srv.pitr]
    for target, kind in targets:
        found = [b for b in repo.backups_for(target, states=("completed",)) if b.kind == kind]
        ids += [b.id for b in reversed(found)]
    return ids


def unusable_reason(
    record: BackupRecord | None, backup_id: int, inventory: Inventory
) -> str | None:
    """Why a backup cannot be drilled (None = it can)."""
    if record is None:
        return f"备份 #{backup_id} 不存在 backup #{backup_id} does not exist"
    if record.kind == "files":
        return (
            f"备份 #{backup_id} 是文件备份 is a file backup "
            "(its checksums are checked by file_backup)"
        )
    if record.state not in ("completed", "verified"):
        return (
            f"备份 #{backup_id} 状态为 is {record.state}; "
            "only completed or verified backups are drilled"
        )
    if record.deleted_at is not None:
        return (
            f"备份 #{backup_id} 已被保留策略删除 was deleted by retention ({record.deleted_reason})"
        )
    known = {d.id for _, d in inventory.all_databases()}
    known |= {v.id for _, v in inventory.all_servers() if v.pitr}
    if record.database_id not in known:
        return (
            f"备份 #{backup_id} 的数据库 {record.database_id} 已不在清单中 "
            "is no longer in the inventory"
        )
    return None


def drill_job(
    record: BackupRecord, inventory: Inventory, *, mode: str | None, pitr_target: str | None
) -> dict[str, Any]:
    """The plain job of one drill (XCom): which backup, where it restores, how deep."""
    from hisops.verify.scratch import scratch_name

    if record.kind == "physical":
        system, srv = inventory.locate_server(record.database_id)
        return {
            "backup_id": record.id,
            "database_id": srv.id,
            "system_id": system.id,
            "kind": "physical",
            "label": (record.manifest or {}).get("label"),
            "scratch_db": "",
            "mode": mode or DEFAULT_MODE,
            "pitr_target": pitr_target or DEFAULT_PITR_TARGET,
        }
    system, db = inventory.locate_database(record.database_id)
    return {
        "backup_id": record.id,
        "database_id": db.id,
        "system_id": system.id,
        "backup_dir": record.path,
        "manifest_sha256": record.manifest_sha256,
        "scratch_db": scratch_name(db.id, record.id),
        "mode": mode or DEFAULT_MODE,
    }


def vanished(
    repo: CatalogRepository,
    record: BackupRecord,
    run: RunInfo,
    channels: Sequence[Channel] | None,
) -> str | None:
    """Storage check before drilling: files gone → ``missing`` + incident + notification (the run
    must not end green: the drill of this job reports it). None when the files are there."""
    from hisops.backup import trust

    check = trust.ensure_present(
        repo, record, channels=channels, actor=run.actor, **run.audit_fields()
    )
    return None if check.ok else f"{check.verdict}: {check.summary}"


def plan_drills(
    repo: CatalogRepository,
    inventory: Inventory,
    run: RunInfo,
    *,
    backup_id: int | None,
    event_extras: Iterable[Mapping[str, Any] | None] = (),
    mode: str | None = None,
    pitr_target: str | None = None,
    channels: Sequence[Channel] | None = None,
    backup_root: Callable[[], Path] | None = None,
) -> list[dict[str, Any]]:
    """The backups to drill: the form's ``backup_id`` (an unusable one is an error), else those of
    the triggering asset events, else every backup not drilled yet (unusable ones skipped).

    ``backup_root`` (the checked shared storage) is called first: a worker that cannot see the
    backups fails here instead of marking them missing."""
    if backup_root is not None:
        backup_root()
    explicit = backup_id is not None
    if explicit:
        ids = [int(backup_id)]
    else:
        ids = backup_ids_from_events(event_extras) or pending_backup_ids(repo, inventory)
    jobs = []
    for ident in ids:
        record = repo.get_backup(ident)
        reason = unusable_reason(record, ident, inventory)
        if reason and explicit:
            raise ValueError(reason)
        if reason:
            log.warning("跳过 skipped: %s", reason)
            continue
        gone = vanished(repo, record, run, channels)
        job = drill_job(record, inventory, mode=mode, pitr_target=pitr_target)
        jobs.append({**job, **({"vanished": gone} if gone else {})})
    log.info(
        "恢复演练 drills planned: %s",
        [(j["database_id"], j["backup_id"], j["scratch_db"]) for j in jobs],
    )
    return jobs
