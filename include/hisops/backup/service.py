"""Backups as the DAGs run them: db_backup, file_backup, backup_retention (``backup_tasks``).

Each function takes the catalog, the inventory, plain run values and a :class:`BackupAccess`
(how hosts and the checked storage are reached: the Airflow glue resolves connections, tests pass
their own), does one step and records it itself: catalog rows and audit events through the
repository, incidents and notifications through the channels given. A database backup itself is
``hisops.backup.dump.backup_database`` on a DumpSpec (built from the inventory and connections by
``hisops.airflow.runtime.dump_spec``), which records for itself too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.inventory.selection import select_ids

if TYPE_CHECKING:
    from hisops.backup.offsite import Destination
    from hisops.backup.retention import Plan, Target
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Host, Inventory, Offsite
    from hisops.notify.channels import Channel
    from hisops.runinfo import RunInfo
    from hisops.targets.runner import CommandRunner, SshRunner

log = logging.getLogger(__name__)

OFFSITE_ACTION = "backup_offsite"
VERIFY_FILES_ACTION = "backup_verify_files"
RETENTION_ACTION = "backup_retention"
RETENTION_ACTOR = "backup_retention"  # who plan-time storage findings name (as before)
NO_OFFSITE = "未配置异地备份 no backup_storage.offsite in the inventory"


@dataclass(frozen=True)
class BackupAccess:
    """How backups reach their hosts and storage (database backups take a ready DumpSpec)."""

    #: the backup storage root, checked (raises when this worker does not see the shared storage)
    storage: Callable[[], Path]
    #: the command runner of an inventory host (file backups)
    runner_for: Callable[[Host], CommandRunner] | None = None
    #: an SSH runner for a connection id (the off-site SFTP destination)
    ssh_runner: Callable[[str], SshRunner] | None = None


# --- selection ----------------------------------------------------------------------------------


def database_ids(inventory: Inventory, wanted: Sequence[str] | None) -> list[str]:
    ids = select_ids([d.id for _, d in inventory.all_databases()], wanted, "数据库 databases")
    log.info("本次备份 databases to back up: %s", ", ".join(ids) or "none")
    return ids


def host_ids(inventory: Inventory, wanted: Sequence[str] | None) -> list[str]:
    hosts = [h.id for _, h in inventory.all_hosts() if h.backup_paths]
    ids = select_ids(hosts, wanted, "配置了 backup_paths 的主机 hosts with backup_paths")
    log.info(
        "本次文件备份 hosts to back up: %s", ", ".join(ids) or "none (no host has backup_paths)"
    )
    return ids


# --- off-site copies ------------------------------------------------------------------------------


@contextmanager
def destination(
    offsite: Offsite, ssh_runner: Callable[[str], SshRunner] | None
) -> Iterator[Destination]:
    """The off-site Destination of the inventory's offsite block (SFTP session closed on exit)."""
    from hisops.backup.offsite import PathDestination, SftpDestination

    if offsite.kind == "path":
        yield PathDestination()
        return
    from hisops.backup.files import ssh_client

    if ssh_runner is None:
        raise ValueError("an SFTP off-site destination needs BackupAccess.ssh_runner")
    runner = ssh_runner(offsite.ssh_conn_id)
    try:
        sftp = ssh_client(runner).open_sftp()
        try:
            yield SftpDestination(sftp, runner.params.host)
        finally:
            sftp.close()
    finally:
        runner.close()


def copy_offsite(
    repo: CatalogRepository,
    inventory: Inventory,
    result: Mapping[str, Any],
    access: BackupAccess,
    run: RunInfo,
) -> dict[str, Any] | None:
    """Copy a finished backup to ``backup_storage.offsite`` and verify it there (audited, also on
    failure). None when the inventory has no off-site storage."""
    offsite = inventory.backup_storage.offsite
    if offsite is None:
        return None
    from hisops.backup.offsite import copy_backup

    details = {"backup_id": result["backup_id"], "path": result["path"]}
    try:
        with destination(offsite, access.ssh_runner) as dest:
            done = copy_backup(Path(result["path"]), access.storage(), dest, offsite.path)
    except Exception as exc:
        repo.add_audit_event(
            actor=run.actor,
            action=OFFSITE_ACTION,
            target=result["target_id"],
            result="failure",
            details={**details, "error": str(exc)[:500]},
            **run.audit_fields(),
        )
        raise
    repo.add_audit_event(
        actor=run.actor,
        action=OFFSITE_ACTION,
        target=result["target_id"],
        result="success",
        details={**details, **done.as_dict()},
        **run.audit_fields(),
    )
    return done.as_dict()


def offsite_deleter(
    inventory: Inventory, access: BackupAccess
) -> Callable[[Path], str | None] | None:
    """What retention calls to remove a deleted backup's off-site copy (None: no off-site).
    Errors are returned as text (the local deletion is recorded; the leftover is reported)."""
    offsite = inventory.backup_storage.offsite
    if offsite is None:
        return None
    from hisops.backup.offsite import delete_copy

    base = access.storage()

    def remove(local_dir: Path) -> str | None:
        try:
            with destination(offsite, access.ssh_runner) as dest:
                return delete_copy(dest, offsite.path, local_dir, base)
        except Exception as exc:  # noqa: BLE001 - recorded and reported, never raised
            log.warning("异地副本删除失败 could not delete off-site copy of %s: %s", local_dir, exc)
            return f"error: {exc}"[:300]

    return remove


# --- file backups ---------------------------------------------------------------------------------


def back_up_files(
    repo: CatalogRepository,
    inventory: Inventory,
    host_id: str,
    access: BackupAccess,
    run: RunInfo,
) -> dict[str, Any]:
    """One host's backup_paths, streamed and checksummed; the small outcome dict."""
    from hisops.backup.files import FileSpec, backup_files

    if access.runner_for is None:
        raise ValueError("file backups need BackupAccess.runner_for")
    system, host = inventory.locate_host(host_id)
    paths = [str(inventory.resolve_path(p)) if host.local else p for p in host.backup_paths]
    spec = FileSpec(
        host_id=host.id,
        system_id=system.id,
        paths=paths,
        storage=access.storage(),
        dag_run_id=run.run_id,
        dag_id=run.dag_id,
        actor=run.actor,
    )
    runner = access.runner_for(host)
    try:
        return backup_files(spec, runner, repo).as_dict()
    finally:
        runner.close()


def verify_files(
    repo: CatalogRepository, result: Mapping[str, Any], run: RunInfo
) -> dict[str, Any]:
    """Re-read every archive (checksum, decompress, list): recorded, audited, completed →
    verified; damaged → failed, and RuntimeError naming the problems."""
    from hisops.backup.files import verify_file_backup

    problems, members = verify_file_backup(result["path"])
    repo.add_verification(
        result["backup_id"],
        not problems,
        details={"members": members, "problems": problems},
        error="; ".join(problems)[:2000] or None,
    )
    repo.add_audit_event(
        actor=run.actor,
        action=VERIFY_FILES_ACTION,
        target=result["target_id"],
        result="failure" if problems else "success",
        details={"backup_id": result["backup_id"], "problems": problems[:20]},
        **run.audit_fields(),
    )
    if problems:
        repo.mark_backup_verification_failed(result["backup_id"], "; ".join(problems)[:2000])
        raise RuntimeError(
            f"文件备份校验失败 file backup #{result['backup_id']} failed verification: "
            f"{'; '.join(problems[:5])}"
        )
    repo.mark_backup_verified(result["backup_id"])
    log.info("文件备份 #%s 校验通过 verified: %d archive members", result["backup_id"], members)
    return {"backup_id": result["backup_id"], "members": members}


# --- the run's summary ----------------------------------------------------------------------------


def summarize_run(
    repo: CatalogRepository, kind: str, selected: Sequence[str], run_id: str
) -> dict[str, Any]:
    """This run's backups per target from the catalog; RuntimeError when any target has none."""
    states: dict[str, str] = {}
    for target in selected:
        mine = [b for b in repo.backups_for(target) if b.dag_run_id == run_id and b.kind == kind]
        states[target] = mine[0].state if mine else "missing"
        if mine and mine[0].error:
            log.error("%s #%s: %s", target, mine[0].id, mine[0].error)
    good = {t: s for t, s in states.items() if s in ("completed", "verified")}
    log.info(
        "备份汇总 backup summary: %s",
        ", ".join(f"{t}={s}" for t, s in states.items()) or "nothing selected",
    )
    if len(good) != len(states):
        bad = ", ".join(f"{t} ({s})" for t, s in states.items() if t not in good)
        raise RuntimeError(
            f"部分备份失败 some backups failed: {bad} — 见各映射任务日志 see the mapped task logs"
        )
    return {"states": states}


# --- backup_retention -----------------------------------------------------------------------------


def reconcile_storage(
    repo: CatalogRepository,
    inventory: Inventory,
    access: BackupAccess,
    run: RunInfo,
    channels: Sequence[Channel] = (),
) -> dict[str, Any]:
    """Catalog vs storage, both ways, both tiers (vanished → missing; orphans reported)."""
    from hisops.backup.reconcile import describe, reconcile

    access.storage()  # a worker without the shared mount must not mark backups missing
    results = reconcile(repo, inventory, channels=channels, actor=run.actor, **run.audit_fields())
    log.info("%s", describe(results))
    return {
        "vanished": [i for r in results for i in r.vanished],
        "orphans": sum(len(r.orphans) for r in results),
    }


def _plan(
    repo: CatalogRepository,
    inventory: Inventory,
    target: Target,
    channels: Sequence[Channel],
) -> Plan:
    from zoneinfo import ZoneInfo

    from hisops.backup.retention import plan_checked

    return plan_checked(
        repo,
        inventory,
        target.kind,
        target.target_id,
        target.policy,
        ZoneInfo(inventory.timezone),
        channels=channels,
        actor=RETENTION_ACTOR,
    )


def plan_retention(
    repo: CatalogRepository,
    inventory: Inventory,
    access: BackupAccess,
    channels: Sequence[Channel] = (),
) -> dict[str, list[int]]:
    """Plan every target; log each decision; {"<kind>:<target>": [ids to delete]} (small)."""
    from hisops.backup.retention import describe, targets

    out: dict[str, list[int]] = {}
    for target in targets(inventory, access.storage()):
        p = _plan(repo, inventory, target, channels)
        for line in describe(p):
            log.info("%s", line)
        out[target.key] = [d.backup_id for d in p.deletions]
    log.info("计划删除 planned deletions: %d backups", sum(len(v) for v in out.values()))
    return out


def apply_retention(
    repo: CatalogRepository,
    inventory: Inventory,
    planned: Mapping[str, list[int]],
    choice: str,
    access: BackupAccess,
    run: RunInfo,
    channels: Sequence[Channel] = (),
) -> dict[str, Any]:
    """Delete what is planned AND still planned now (state may have changed), unless dry run."""
    from hisops.backup.retention import Plan, apply, resolve_dry_run, targets

    dry = resolve_dry_run(choice, run.run_type)
    deleted: dict[str, list[int]] = {}
    for target in targets(inventory, access.storage()):
        fresh = _plan(repo, inventory, target, channels)
        allowed = set(planned.get(target.key, []))
        todo = Plan(target.target_id, [d for d in fresh.deletions if d.backup_id in allowed])
        if dry or not todo.decisions:
            continue
        done = apply(
            todo,
            target.root,
            repo,
            actor=run.actor,
            delete_offsite=offsite_deleter(inventory, access),
            **run.audit_fields(),
        )
        deleted[target.key] = [d.backup_id for d in done]
    total_planned = sum(len(v) for v in planned.values())
    repo.add_audit_event(
        actor=run.actor,
        action=RETENTION_ACTION,
        target="backup_storage",
        result="success",
        details={"dry_run": dry, "planned": dict(planned), "deleted": deleted},
        **run.audit_fields(),
    )
    if dry:
        log.info("预演模式，未删除任何备份 DRY RUN: nothing deleted (%d would be)", total_planned)
    else:
        log.info("已删除 deleted %d backups", sum(len(v) for v in deleted.values()))
    return {"dry_run": dry, "planned": total_planned, "deleted": deleted}
