"""Task bodies of db_backup, file_backup and backup_retention (the DAG files only wire them).

Import-cheap: DAG files import this module at parse time; drivers, paramiko and the backup domain
are imported inside the functions.

Assets: every completed backup emits an event for ``Asset("hisops://backup/<database_id>")`` (file
backups: ``hisops://backup/<host_id>``) through the task outlet ``AssetAlias("hisops-backup")``, with
extra ``{backup_id, kind, path, manifest_sha256, size_bytes}``. A mapped task emits only the asset of
its own database, so the verification DAG scheduled on that asset runs for the data that changed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hisops.airflow import runtime
from hisops.backup.manifest import asset_uri

log = logging.getLogger(__name__)
BACKUP_ALIAS = "hisops-backup"
DRY_RUN_CHOICES = ("auto", "yes", "no")


# --- assets -----------------------------------------------------------------------------------


def backup_alias():
    from airflow.sdk import AssetAlias

    return AssetAlias(BACKUP_ALIAS)


def backup_asset(target_id: str):
    """The Asset the verification side schedules on (name = URI)."""
    from airflow.sdk import Asset

    return Asset(asset_uri(target_id))


def emit_backup_event(context: dict, result: dict[str, Any]) -> None:
    extra = {k: result[k] for k in ("backup_id", "kind", "path", "manifest_sha256", "size_bytes")}
    context["outlet_events"][backup_alias()].add(backup_asset(result["target_id"]), extra=extra)


# --- shared -----------------------------------------------------------------------------------


def actor(context: dict) -> str:
    """Who the audit trail names: the user who triggered the run, else the DAG (scheduled)."""
    run = context.get("dag_run")
    user = getattr(run, "triggering_user_name", None)
    return user or f"{context['dag'].dag_id} (scheduler)"


def storage_root(inv: Any) -> Path:
    """``backup_storage.path`` once this worker is shown to see the catalog's backup storage."""
    from hisops.airflow.shared_storage import backup_root

    return backup_root(inv)


def set_label(context: dict, label: str) -> None:
    """Name the mapped task instance in the UI (``map_index_template="{{ hisops_label }}"``)."""
    from airflow.sdk import get_current_context

    context["hisops_label"] = label
    get_current_context()["hisops_label"] = label  # the context the template is rendered with


def select(known: list[str], wanted: list[str] | None, what: str) -> list[str]:
    """All ``known`` ids, or the ``wanted`` subset (unknown ids are an error naming them)."""
    if not wanted:
        return known
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(
            f"清单中没有这些{what} not in the inventory: {', '.join(unknown)} "
            f"(known: {', '.join(known) or 'none'})"
        )
    return [k for k in known if k in wanted]


# --- db_backup --------------------------------------------------------------------------------


def select_databases(wanted: list[str] | None) -> list[str]:
    ids = select([d.id for _, d in runtime.inventory().all_databases()], wanted, "数据库 databases")
    log.info("本次备份 databases to back up: %s", ", ".join(ids) or "none")
    return ids


def database_spec(database_id: str, *, dag_id: str | None, run_id: str | None, who: str):
    """DumpSpec from the inventory + Airflow connections (also used for safety backups)."""
    from hisops.airflow.connections import get_connection
    from hisops.backup.dump import DumpSpec

    inv = runtime.inventory()
    system, db = next((s, d) for s, d in inv.all_databases() if d.id == database_id)
    policy = db.backup
    secret = get_connection(policy.encryption_conn_id).password if policy.encrypt else None
    if policy.encrypt and not secret:
        raise ValueError(
            f"加密连接没有密码 encryption connection {policy.encryption_conn_id!r} has no password"
        )
    return DumpSpec(
        database_id=db.id,
        system_id=system.id,
        dsn=runtime.dsn_for(db),
        storage=storage_root(inv),
        jobs=policy.jobs,
        compress=policy.compress,
        exact_count_max_rows=policy.exact_count_max_rows,
        pg_bindir=db.pg_bindir,
        encryption_secret=secret,
        encryption_conn_id=policy.encryption_conn_id if policy.encrypt else None,
        dag_run_id=run_id,
        dag_id=dag_id,
        actor=who,
    )


def run_database_backup(
    database_id: str,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    who: str = "hisops",
    lease: Any = None,
) -> dict[str, Any]:
    """One database backup with proof; returns the small outcome dict (ids, path, size, seconds)."""
    from dataclasses import replace

    from hisops.backup.dump import backup_database

    spec = replace(database_spec(database_id, dag_id=dag_id, run_id=run_id, who=who), lease=lease)
    return backup_database(spec, runtime.catalog()).as_dict()


def backup_database_task(database_id: str, context: dict) -> dict[str, Any]:
    from hisops.airflow.lease import current_try_lease

    set_label(context, database_id)
    result = run_database_backup(
        database_id,
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
        who=actor(context),
        lease=current_try_lease(context),
    )
    emit_backup_event(context, result)
    return result


# --- off-site ---------------------------------------------------------------------------------


def offsite_copy(result: dict[str, Any], context: dict) -> dict[str, Any]:
    """Copy a finished backup to the inventory's ``backup_storage.offsite`` and verify it there."""
    set_label(context, result["target_id"])
    inv = runtime.inventory()
    offsite = inv.backup_storage.offsite
    if offsite is None:
        from airflow.exceptions import AirflowSkipException

        raise AirflowSkipException("未配置异地备份 no backup_storage.offsite in the inventory")
    from hisops.backup.offsite import copy_backup

    repo, who = runtime.catalog(), actor(context)
    details = {"backup_id": result["backup_id"], "path": result["path"]}
    try:
        with destination(offsite) as dest:
            done = copy_backup(Path(result["path"]), storage_root(inv), dest, offsite.path)
    except Exception as exc:
        repo.add_audit_event(
            actor=who,
            action="backup_offsite",
            target=result["target_id"],
            result="failure",
            details={**details, "error": str(exc)[:500]},
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
        )
        raise
    repo.add_audit_event(
        actor=who,
        action="backup_offsite",
        target=result["target_id"],
        result="success",
        details={**details, **done.as_dict()},
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
    )
    return done.as_dict()


class destination:  # noqa: N801 - used as a context manager like open()
    """The off-site Destination for the inventory's offsite block (SFTP session closed on exit)."""

    def __init__(self, offsite: Any) -> None:
        self.offsite, self._runner, self._sftp = offsite, None, None

    def __enter__(self):
        from hisops.backup.offsite import PathDestination, SftpDestination

        if self.offsite.kind == "path":
            return PathDestination()
        from hisops.airflow.connections import ssh_params
        from hisops.backup.files import ssh_client
        from hisops.targets.runner import SshRunner

        self._runner = SshRunner(
            f"offsite:{self.offsite.ssh_conn_id}", ssh_params(self.offsite.ssh_conn_id)
        )
        self._sftp = ssh_client(self._runner).open_sftp()
        return SftpDestination(self._sftp, self._runner.params.host)

    def __exit__(self, *exc: object) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self._runner is not None:
            self._runner.close()


# --- file_backup ------------------------------------------------------------------------------


def select_hosts(wanted: list[str] | None) -> list[str]:
    hosts = [h.id for _, h in runtime.inventory().all_hosts() if h.backup_paths]
    ids = select(hosts, wanted, "配置了 backup_paths 的主机 hosts with backup_paths")
    log.info(
        "本次文件备份 hosts to back up: %s", ", ".join(ids) or "none (no host has backup_paths)"
    )
    return ids


def backup_files_task(host_id: str, context: dict) -> dict[str, Any]:
    from hisops.backup.files import FileSpec, backup_files

    set_label(context, host_id)
    inv = runtime.inventory()
    system, host = next((s, h) for s, h in inv.all_hosts() if h.id == host_id)
    paths = [str(inv.resolve_path(p)) if host.local else p for p in host.backup_paths]
    spec = FileSpec(
        host_id=host.id,
        system_id=system.id,
        paths=paths,
        storage=storage_root(inv),
        dag_run_id=context["run_id"],
        dag_id=context["dag"].dag_id,
        actor=actor(context),
    )
    runner = runtime.runner_for(host)
    try:
        result = backup_files(spec, runner, runtime.catalog()).as_dict()
    finally:
        runner.close()
    emit_backup_event(context, result)
    return result


def verify_file_backup_task(result: dict[str, Any], context: dict) -> dict[str, Any]:
    """Re-read every archive (checksum, decompress, list); completed → verified, or failed."""
    from hisops.backup.files import verify_file_backup

    set_label(context, result["target_id"])
    repo = runtime.catalog()
    problems, members = verify_file_backup(result["path"])
    outcome = "failure" if problems else "success"
    repo.add_verification(
        result["backup_id"],
        not problems,
        details={"members": members, "problems": problems},
        error="; ".join(problems)[:2000] or None,
    )
    repo.add_audit_event(
        actor=actor(context),
        action="backup_verify_files",
        target=result["target_id"],
        result=outcome,
        details={"backup_id": result["backup_id"], "problems": problems[:20]},
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
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


# --- summaries --------------------------------------------------------------------------------


def summarize_run(kind: str, selected: list[str], context: dict) -> dict[str, Any]:
    """This run's backups per target from the catalog; fails the run when any target has none."""
    repo, run_id = runtime.catalog(), context["run_id"]
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


# --- backup_retention -------------------------------------------------------------------------


def reconcile_storage(context: dict) -> dict[str, Any]:
    """Catalog vs storage, both ways, both tiers (vanished → missing; orphans reported)."""
    from hisops.backup.reconcile import describe, reconcile

    storage_root(
        runtime.inventory()
    )  # a worker without the shared mount must not mark backups missing
    results = reconcile(
        runtime.catalog(),
        runtime.inventory(),
        channels=runtime.channels(),
        actor=actor(context),
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
    )
    log.info("%s", describe(results))
    return {
        "vanished": [i for r in results for i in r.vanished],
        "orphans": sum(len(r.orphans) for r in results),
    }


def resolve_dry_run(choice: str, run_type: str) -> bool:
    """'yes' → dry run, 'no' → delete; 'auto' → scheduled runs delete, anything manual only previews."""
    if choice not in DRY_RUN_CHOICES:
        raise ValueError(f"dry_run must be one of {DRY_RUN_CHOICES}, not {choice!r}")
    return choice == "yes" or (
        choice == "auto" and str(run_type).split(".")[-1].lower() != "scheduled"
    )


def _retention_targets(inv: Any) -> list[tuple[str, str, Any, Path]]:
    """(kind, target id, Policy, root) for every database and every host with backup_paths."""
    from hisops.backup.retention import Policy
    from hisops.backup.storage import target_root

    root = storage_root(inv)
    out = []
    for _, db in inv.all_databases():
        b = db.backup
        out.append(
            (
                "database",
                db.id,
                Policy(b.keep_daily, b.keep_weekly, b.keep_monthly),
                target_root(root, db.id),
            )
        )
    r = inv.retention
    for _, host in inv.all_hosts():
        if host.backup_paths:
            out.append(
                (
                    "files",
                    host.id,
                    Policy(r.keep_daily, r.keep_weekly, r.keep_monthly),
                    target_root(root, host.id, "files"),
                )
            )
    return out


def _plan_for(repo: Any, kind: str, target: str, policy: Any, tz: Any):
    from hisops.backup.retention import plan_checked

    return plan_checked(
        repo,
        runtime.inventory(),
        kind,
        target,
        policy,
        tz,
        channels=runtime.channels(),
        actor="backup_retention",
    )


def retention_plan(context: dict) -> dict[str, Any]:
    """Plan every target; log each decision; return {target: [ids to delete]} (small)."""
    from zoneinfo import ZoneInfo

    from hisops.backup.retention import describe

    inv, repo = runtime.inventory(), runtime.catalog()
    out: dict[str, list[int]] = {}
    for kind, target, policy, _root in _retention_targets(inv):
        p = _plan_for(repo, kind, target, policy, ZoneInfo(inv.timezone))
        for line in describe(p):
            log.info("%s", line)
        out[f"{kind}:{target}"] = [d.backup_id for d in p.deletions]
    log.info("计划删除 planned deletions: %d backups", sum(len(v) for v in out.values()))
    return out


def retention_apply(planned: dict[str, list[int]], choice: str, context: dict) -> dict[str, Any]:
    """Delete what is planned AND still planned now (state may have changed), unless dry run."""
    from zoneinfo import ZoneInfo

    from hisops.backup.retention import Plan, apply

    dry = resolve_dry_run(choice, getattr(context["dag_run"], "run_type", "manual"))
    inv, repo, who = runtime.inventory(), runtime.catalog(), actor(context)
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    deleted: dict[str, list[int]] = {}
    for kind, target, policy, root in _retention_targets(inv):
        fresh = _plan_for(repo, kind, target, policy, ZoneInfo(inv.timezone))
        allowed = set(planned.get(f"{kind}:{target}", []))
        todo = Plan(target, [d for d in fresh.deletions if d.backup_id in allowed])
        if dry or not todo.decisions:
            continue
        done = apply(
            todo,
            root,
            repo,
            actor=who,
            dag_id=dag_id,
            run_id=run_id,
            delete_offsite=_offsite_deleter(inv, root),
        )
        deleted[f"{kind}:{target}"] = [d.backup_id for d in done]
    total_planned = sum(len(v) for v in planned.values())
    repo.add_audit_event(
        actor=who,
        action="backup_retention",
        target="backup_storage",
        result="success",
        details={"dry_run": dry, "planned": planned, "deleted": deleted},
        dag_id=dag_id,
        run_id=run_id,
    )
    if dry:
        log.info("预演模式，未删除任何备份 DRY RUN: nothing deleted (%d would be)", total_planned)
    else:
        log.info("已删除 deleted %d backups", sum(len(v) for v in deleted.values()))
    return {"dry_run": dry, "planned": total_planned, "deleted": deleted}


def _offsite_deleter(inv: Any, root: Path):
    offsite = inv.backup_storage.offsite
    if offsite is None:
        return None
    from hisops.backup.offsite import delete_copy

    base = storage_root(inv)

    def remove(local_dir: Path) -> str | None:
        try:
            with destination(offsite) as dest:
                return delete_copy(dest, offsite.path, local_dir, base)
        except Exception as exc:  # noqa: BLE001 - local deletion is recorded; the off-site leftover is reported
            log.warning("异地副本删除失败 could not delete off-site copy of %s: %s", local_dir, exc)
            return f"error: {exc}"[:300]

    return remove
