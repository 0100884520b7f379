"""Adapters of db_backup, file_backup and backup_retention: context → plain arguments → one
``hisops.backup.service`` call → a small return value.

Import-cheap: DAG files import this module at parse time; drivers, paramiko and the backup domain
are imported inside the functions.

Assets: every completed backup emits an event for ``Asset("hisops://backup/<database_id>")`` (file
backups: ``hisops://backup/<host_id>``) through the task outlet ``AssetAlias("hisops-backup")``,
with extra ``{backup_id, kind, path, manifest_sha256, size_bytes}``. A mapped task emits only the
asset of its own database, so the verification DAG scheduled on that asset runs for the data that
changed.
"""

from __future__ import annotations

import logging
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label
from hisops.backup.manifest import asset_uri
from hisops.backup.retention import DRY_RUN_CHOICES  # noqa: F401 - the DAG's Param enum

log = logging.getLogger(__name__)
BACKUP_ALIAS = "hisops-backup"


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


# --- how targets are reached ------------------------------------------------------------------


def _ssh_runner(conn_id: str) -> Any:
    from hisops.airflow.connections import ssh_params
    from hisops.targets.runner import SshRunner

    return SshRunner(f"offsite:{conn_id}", ssh_params(conn_id))


def _access(inventory: Any) -> Any:
    from hisops.airflow.shared_storage import backup_root
    from hisops.backup.service import BackupAccess

    return BackupAccess(
        storage=lambda: backup_root(inventory),
        runner_for=runtime.runner_for,
        ssh_runner=_ssh_runner,
    )


# --- db_backup --------------------------------------------------------------------------------


def select_databases(wanted: list[str] | None) -> list[str]:
    from hisops.backup.service import database_ids

    return database_ids(runtime.inventory(), wanted)


def run_database_backup(
    database_id: str,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    who: str = "hisops",
    lease: Any = None,
) -> dict[str, Any]:
    """One database backup with proof; returns the small outcome dict (ids, path, size, seconds).
    Outside a task too (the benchmark)."""
    from dataclasses import replace

    from hisops.backup.dump import backup_database

    spec = runtime.dump_spec(database_id, dag_id=dag_id, run_id=run_id, who=who)
    return backup_database(replace(spec, lease=lease), runtime.catalog()).as_dict()


def backup_database_task(database_id: str, context: dict) -> dict[str, Any]:
    from hisops.airflow.lease import current_try_lease

    set_label(context, database_id)
    run = run_info(context)
    result = run_database_backup(
        database_id,
        dag_id=run.dag_id,
        run_id=run.run_id,
        who=run.actor,
        lease=current_try_lease(context),
    )
    emit_backup_event(context, result)
    return result


# --- off-site ---------------------------------------------------------------------------------


def offsite_copy(result: dict[str, Any], context: dict) -> dict[str, Any]:
    """Copy a finished backup to the inventory's ``backup_storage.offsite`` and verify it there."""
    from hisops.backup.service import NO_OFFSITE, copy_offsite

    set_label(context, result["target_id"])
    inv = runtime.inventory()
    done = copy_offsite(runtime.catalog(), inv, result, _access(inv), run_info(context))
    if done is None:
        from airflow.exceptions import AirflowSkipException

        raise AirflowSkipException(NO_OFFSITE)
    return done


# --- file_backup ------------------------------------------------------------------------------


def select_hosts(wanted: list[str] | None) -> list[str]:
    from hisops.backup.service import host_ids

    return host_ids(runtime.inventory(), wanted)


def backup_files_task(host_id: str, context: dict) -> dict[str, Any]:
    from hisops.backup.service import back_up_files

    set_label(context, host_id)
    inv = runtime.inventory()
    result = back_up_files(runtime.catalog(), inv, host_id, _access(inv), run_info(context))
    emit_backup_event(context, result)
    return result


def verify_file_backup_task(result: dict[str, Any], context: dict) -> dict[str, Any]:
    """Re-read every archive (checksum, decompress, list); completed → verified, or failed."""
    from hisops.backup.service import verify_files

    set_label(context, result["target_id"])
    return verify_files(runtime.catalog(), result, run_info(context))


# --- summaries --------------------------------------------------------------------------------


def summarize_run(kind: str, selected: list[str], context: dict) -> dict[str, Any]:
    """This run's backups per target from the catalog; fails the run when any target has none."""
    from hisops.backup.service import summarize_run as summarize

    return summarize(runtime.catalog(), kind, selected, run_info(context).run_id)


# --- backup_retention -------------------------------------------------------------------------


def reconcile_storage(context: dict) -> dict[str, Any]:
    """Catalog vs storage, both ways, both tiers (vanished → missing; orphans reported)."""
    from hisops.backup.service import reconcile_storage as reconcile

    inv = runtime.inventory()
    return reconcile(runtime.catalog(), inv, _access(inv), run_info(context), runtime.channels())


def retention_plan(context: dict) -> dict[str, Any]:
    """Plan every target; log each decision; return {target: [ids to delete]} (small)."""
    from hisops.backup.service import plan_retention

    inv = runtime.inventory()
    return plan_retention(runtime.catalog(), inv, _access(inv), runtime.channels())


def retention_apply(planned: dict[str, list[int]], choice: str, context: dict) -> dict[str, Any]:
    """Delete what is planned AND still planned now (state may have changed), unless dry run."""
    from hisops.backup.service import apply_retention

    inv = runtime.inventory()
    return apply_retention(
        runtime.catalog(),
        inv,
        planned,
        choice,
        _access(inv),
        run_info(context),
        runtime.channels(),
    )
