"""物理备份 One physical backup (full/diff/incr) recorded in the one catalog, and catalog sync.

``backup_server``: register ``running`` → ``pgbackrest backup --type=…`` → read ``pgbackrest info
--output=json`` → the new backup label becomes the catalog row's manifest (kind ``physical``,
state ``completed``; a PITR drill makes it ``verified``). A failed or killed pgBackRest run (disk
full, repository unwritable, SIGKILL) never becomes a completed backup: the row is ``failed`` with
pgBackRest's own error; rows left ``running`` by a killed worker are failed by the next run.
After every backup ``sync_catalog`` compares the catalog with pgBackRest's list: labels pgBackRest
expired by its retention are marked deleted, labels that vanished otherwise become ``missing``
(incident, notification), labels the catalog does not know are reported as orphans.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.pitr.pgbackrest import (
    PgBackRestError,
    PhysicalBackup,
    StanzaInfo,
    error_lines,
    exit_text,
)
from hisops.timeouts import STALE_PITR_BACKUP

if TYPE_CHECKING:
    from hisops.backup.trust import StorageCheck
    from hisops.catalog.records import BackupRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory, PgServer
    from hisops.notify.channels import Channel
    from hisops.pitr.pgbackrest import PgBackRest
    from hisops.runinfo import RunInfo

log = logging.getLogger(__name__)
FORMAT = "pgbackrest-info/1"
TYPES = ("full", "diff", "incr")
ACTION = "backup_physical"
STALE_RUNNING = STALE_PITR_BACKUP  # > pitr_backup's execution_timeout (hisops.timeouts)


@dataclass(frozen=True)
class PhysicalOutcome:
    backup_id: int
    target_id: str
    kind: str
    label: str
    type: str
    path: str
    size_bytes: int
    repo_bytes: int
    manifest_sha256: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def backup_path(stanza: str, label: str) -> str:
    return f"pgbackrest:{stanza}/{label}"


def catalog_manifest(server: PgServer, b: PhysicalBackup) -> dict[str, Any]:
    pitr = server.pitr
    assert pitr is not None
    return {
        "format": FORMAT,
        "kind": "physical",
        "server_id": server.id,
        "stanza": pitr.stanza,
        "label": b.label,
        "type": b.type,
        "prior": b.prior,
        "repo_kind": pitr.repo.kind,
        "repo_path": pitr.repo.path,
        "config_path": pitr.config_path,
        "started_at": b.started_at.isoformat(),
        "finished_at": b.finished_at.isoformat(),
        "lsn": {"start": b.lsn_start, "stop": b.lsn_stop},
        "wal": {"start": b.wal_start, "stop": b.wal_stop},
        "size_bytes": b.size,
        "repo_bytes": b.repo_size,
        "pgbackrest": b.raw,
    }


def manifest_digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


def fail_stale_running(
    repo: CatalogRepository, server_id: str, now: datetime | None = None, every: bool = False
) -> list[int]:
    """Rows of this server left ``running`` by a killed worker (pgBackRest holds a stanza lock, and
    ``pitr_backup`` runs one at a time, so a running row at the start of a run is dead)."""
    failed = []
    for record in repo.backups_for(server_id, states=("running",)):
        if record.kind != "physical":
            continue
        if every or (now and record.started_at < now - STALE_RUNNING):
            repo.fail_backup(
                record.id, "中断 interrupted: the run that took it ended without recording it"
            )
            failed.append(record.id)
    return failed


LOW_SPACE = 64 * 2**20  # a repository disk with less free space than this is called full


def repo_space_note(server: PgServer, pgbr: PgBackRest) -> str:
    """What a failed backup's message adds about a local repository's disk: pgBackRest 2.45 may
    report a full disk as an unrelated write error (``[2] No such file or directory``)."""
    pitr = server.pitr
    if pgbr.runner is not None or pitr is None or pitr.repo.kind != "path":
        return ""
    try:
        usage = shutil.disk_usage(pitr.repo.path)
    except OSError:
        return ""
    if usage.free >= LOW_SPACE:
        return ""
    return (
        f"; 备份仓库磁盘已满 repository disk full: {usage.free / 2**20:.1f} MiB free of "
        f"{usage.total / 2**20:.1f} MiB at {pitr.repo.path} — 请扩容或清理后重试 "
        "free space or grow the disk, then run the backup again"
    )


def _new_backup(before: set[str], info: StanzaInfo, backup_type: str) -> PhysicalBackup:
    new = [b for b in info.backups if b.label not in before and not b.error]
    if not new:
        raise PgBackRestError(
            f"pgbackrest info 中没有新的 {backup_type} 备份 no new {backup_type} backup in "
            "pgbackrest info after a successful run"
        )
    return new[-1]


def backup_server(
    repo: CatalogRepository,
    server: PgServer,
    system_id: str | None,
    pgbr: PgBackRest,
    backup_type: str,
    run: RunInfo,
    *,
    channels: Sequence[Channel] | None = None,
) -> PhysicalOutcome:
    """One pgBackRest backup of ``server`` end to end; raises on failure (row ``failed``)."""
    from hisops.backup.dump import fail_backup

    if backup_type not in TYPES:
        raise ValueError(f"backup type must be one of {TYPES}, not {backup_type!r}")
    fail_stale_running(repo, server.id, every=True)
    backup_id = repo.register_backup_start(server.id, system_id, "physical", None, run.run_id)
    try:
        before = {b.label for b in pgbr.info().backups}
        result = pgbr.run("backup", f"--type={backup_type}")
        if not result.ok:
            raise PgBackRestError(
                f"pgbackrest backup --type={backup_type} 失败 failed ({exit_text(result.rc)}, "
                f"{result.seconds:.0f}s): {error_lines(result)}{repo_space_note(server, pgbr)}"
            )
        info = pgbr.info()
        made = _new_backup(before, info, backup_type)
        manifest = catalog_manifest(server, made)
        digest = manifest_digest(manifest)
        path = backup_path(server.pitr.stanza, made.label)
        repo.complete_backup(backup_id, manifest, digest, made.repo_size, path)
    except BaseException as exc:
        fail_backup(repo, backup_id, run.actor, server.id, exc, run.run_id, run.dag_id)
        raise
    outcome = PhysicalOutcome(
        backup_id,
        server.id,
        "physical",
        made.label,
        made.type,
        path,
        made.size,
        made.repo_size,
        digest,
        round(result.seconds, 3),
    )
    repo.add_audit_event(
        actor=run.actor,
        action=ACTION,
        target=server.id,
        result="success",
        details=outcome.as_dict(),
        **run.audit_fields(),
    )
    log.info(
        "物理备份完成 physical backup #%s %s %s (%s): %.1f MiB (repo %.1f MiB) in %.1fs",
        backup_id,
        server.id,
        made.label,
        made.type,
        made.size / 2**20,
        made.repo_size / 2**20,
        result.seconds,
    )
    sync_catalog(
        repo, server, info, channels=channels, actor=run.actor, dag_id=run.dag_id, run_id=run.run_id
    )
    return outcome


def _label(record: BackupRecord) -> str | None:
    return (record.manifest or {}).get("label")


def sync_catalog(
    repo: CatalogRepository, server: PgServer, info: StanzaInfo, **record_kw: Any
) -> list[str]:
    """Catalog vs ``pgbackrest info``; returns orphan descriptions (labels the catalog lacks)."""
    from hisops.backup import trust

    present = {b.label: b for b in info.backups if not b.error}
    oldest = min((b.started_at for b in present.values()), default=None)
    records = [r for r in repo.backups_for(server.id, include_deleted=True) if r.kind == "physical"]
    known = {_label(r) for r in records}
    for record in records:
        label = _label(record)
        if record.deleted_at is not None or label is None or label in present:
            continue
        if record.state not in ("completed", "verified"):
            continue
        if oldest is not None and record.started_at < oldest:
            repo.mark_backup_deleted(
                record.id, "pgBackRest 保留策略已过期 expired by pgBackRest retention"
            )
            continue
        check = trust.StorageCheck(
            record.id,
            "missing",
            (
                f"pgBackRest 仓库中没有该备份 label {label} is not "
                f"in the repository (pgbackrest info)",
            ),
        )
        trust.record_vanished(repo, record, check, **record_kw)
    return [
        f"仓库中有目录库不认识的备份 repository backup unknown to the catalog: {label}"
        for label in present
        if label not in known
    ]


def check_record(record: BackupRecord) -> StorageCheck:
    """trust's storage check for a physical row: its backup.manifest in a repository this machine
    can read; a repository out of reach is checked by ``sync_catalog`` (pgbackrest info) instead."""
    from hisops.backup.trust import StorageCheck

    m = record.manifest or {}
    repo_path, stanza, label = m.get("repo_path"), m.get("stanza"), m.get("label")
    if m.get("repo_kind") != "path" or not repo_path or not Path(repo_path).is_dir():
        return StorageCheck(record.id, "present", ())
    folder = Path(repo_path) / "backup" / str(stanza) / str(label)
    manifest = folder / "backup.manifest"
    try:
        found = manifest.is_file()
    except PermissionError:
        return StorageCheck(record.id, "present", ())
    if found:
        return StorageCheck(record.id, "present", ())
    return StorageCheck(
        record.id, "missing", (f"pgBackRest 备份清单不存在 backup.manifest is gone: {manifest}",)
    )


# --- pitr_backup as the DAG runs it -------------------------------------------------------------

PREFLIGHT_ACTION = "pitr_preflight"


class NothingDue(Exception):
    """A scheduled run at a time no cron of this server's ``pitr.schedule`` fires (skipped)."""


def server_ids(inventory: Inventory, wanted: Sequence[str] | None) -> list[str]:
    """The servers with a pitr: block, or the subset the form names (unknown ones: an error)."""
    from hisops.inventory.selection import select_ids
    from hisops.pitr.schedule import pitr_server_ids

    ids = select_ids(pitr_server_ids(inventory), wanted, "配置了 pitr 的服务器 servers with pitr")
    log.info("本次物理备份 servers: %s", ", ".join(ids) or "none (no server has a pitr: block)")
    return ids


def inventory_path(inventory: Inventory, server_id: str) -> str:
    """Where the server sits in the inventory (``systems[i].servers[j].``) for messages."""
    for i, system in enumerate(inventory.systems):
        for j, srv in enumerate(system.servers):
            if srv.id == server_id:
                return f"systems[{i}].servers[{j}]."
    return ""


def write_config(server: PgServer, pgbr: PgBackRest) -> None:
    """The hisops-owned pgBackRest config: written locally (and the repository directory), or on
    the server's host through its runner."""
    from hisops.pitr.config import ensure_repo_dir, write_command, write_local

    if pgbr.runner is None:
        write_local(pgbr.cfg, server.pitr.os_user)
        ensure_repo_dir(server)
        return
    result = pgbr.runner.run(write_command(pgbr.cfg), timeout=60)
    if not result.ok:
        raise RuntimeError(
            f"无法写入 pgBackRest 配置 cannot write {pgbr.cfg.path} on {server.host}: "
            f"{result.stderr.strip()[:300]}"
        )


def prepare_server(
    repo: CatalogRepository,
    inventory: Inventory,
    server_id: str,
    pgbr: PgBackRest,
    dsn: str,
    run: RunInfo,
) -> dict[str, Any]:
    """Write the config, create/check the stanza, verify archiving (never edits the server);
    audited; PreflightError naming every problem."""
    from hisops.pitr.preflight import preflight

    system, server = inventory.locate_server(server_id)
    write_config(server, pgbr)
    result = preflight(server, dsn, pgbr, where=inventory_path(inventory, server_id))
    repo.add_audit_event(
        actor=run.actor,
        action=PREFLIGHT_ACTION,
        target=server_id,
        result="success" if result.ok else "failure",
        details={"problems": list(result.problems)},
        **run.audit_fields(),
    )
    result.raise_for_problems()
    return {"server_id": server_id, "system_id": system.id, "config": str(pgbr.cfg.path)}


def run_backup(
    repo: CatalogRepository,
    inventory: Inventory,
    prepared: dict[str, Any],
    choice: str,
    pgbackrest_for: Callable[[PgServer], PgBackRest],
    run: RunInfo,
    *,
    channels: Sequence[Channel] | None = None,
) -> dict[str, Any]:
    """The backup type the form or the schedule asks for, then :func:`backup_server`.
    NothingDue when a scheduled run finds no type due at its logical time."""
    from zoneinfo import ZoneInfo

    from hisops.pitr.schedule import choose_type

    _, server = inventory.locate_server(prepared["server_id"])
    tz = ZoneInfo(inventory.timezone)
    kind = choose_type(choice, server.pitr.schedule, run.logical_date, tz, run.is_scheduled)
    if kind is None:
        raise NothingDue(f"{server.id}: 此时无计划的备份 no backup type due at {run.logical_date}")
    return backup_server(
        repo, server, prepared["system_id"], pgbackrest_for(server), kind, run, channels=channels
    ).as_dict()
