"""Adapters of backup_verification (恢复演练): context → plain arguments → one domain call.

Import-cheap: the DAG file imports this module at parse time; GX, psycopg2, SQLAlchemy and the
domain modules are imported inside the functions. The decisions live in the domain:
``verify.plan`` (which backups, their jobs), ``verify.jobs`` (one drill, the cleanup),
``verify.record`` (catalog, incident, audit, alert, verdict), ``pitr.drill_job`` (PITR drills).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label

log = logging.getLogger(__name__)

TASK = "backup_verification"  # names this DAG's tasks in storage checks
DRILL_CONN_ID = "hisops_drill"  # optional: a separate server for scratch databases

#: tests set this to a callable(dsn) to tamper with the restored copy before the checks run
BEFORE_CHECKS_HOOK: Any = None


# --- parse time ---------------------------------------------------------------------------------


def verification_schedule(inventory: Any) -> Any:
    """AssetAny over every inventory database's backup asset (None when there is none).

    By *name reference* (``Asset.ref(name=…)``, resolved by the scheduler): the name equals the
    asset db_backup emits (``backup_tasks.backup_asset`` — name = URI ``hisops://backup/<id>``).
    Building ``Asset(uri)`` here would make the parser load every provider's URI handlers (and
    SQLAlchemy's ORM)."""
    from airflow.sdk import Asset, AssetAny

    from hisops.backup.manifest import asset_uri
    from hisops.pitr.schedule import asset_uri as pitr_asset_uri

    refs = [Asset.ref(name=asset_uri(db.id)) for _, db in inventory.all_databases()]
    refs += [
        Asset.ref(name=pitr_asset_uri(srv.id)) for _, srv in inventory.all_servers() if srv.pitr
    ]
    return AssetAny(*refs) if refs else None


# --- how targets are reached ----------------------------------------------------------------------


def _connection_exists(conn_id: str) -> bool:
    from hisops.airflow.connections import get_connection

    try:
        get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and friends: Airflow stays lazy
        return False


def drill_server_dsn(db: Any) -> str:
    """Where scratch databases live: connection ``hisops_drill`` if defined, else the database's
    own server."""
    from hisops.airflow.connections import postgres_dsn

    if _connection_exists(DRILL_CONN_ID):
        return postgres_dsn(DRILL_CONN_ID, "postgres")
    return runtime.dsn_for(db)


def _access(inventory: Any) -> Any:
    from hisops.airflow.connections import backup_encryption_key
    from hisops.airflow.shared_storage import backup_root, reports_root
    from hisops.verify.jobs import DrillAccess

    return DrillAccess(
        dsn_for=runtime.dsn_for,
        drill_server_dsn=drill_server_dsn,
        encryption_key=backup_encryption_key,
        pgbackrest_for=runtime.pgbackrest_for,
        backup_root=lambda: backup_root(inventory, TASK),
        reports_root=lambda: reports_root(inventory, TASK),
    )


def asset_event_extras(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The extras of the asset events that triggered this run (Airflow may attach none)."""
    run = context.get("dag_run")
    return [dict(e.extra or {}) for e in getattr(run, "consumed_asset_events", None) or []]


# --- the tasks ------------------------------------------------------------------------------------


def plan_drills(backup_id: int | None, context: dict) -> list[dict[str, Any]]:
    """The jobs to drill (see ``hisops.verify.plan.plan_drills``)."""
    from hisops.verify.plan import plan_drills as plan

    inv, params = runtime.inventory(), context.get("params") or {}
    return plan(
        runtime.catalog(),
        inv,
        run_info(context),
        backup_id=backup_id,
        event_extras=asset_event_extras(context),
        mode=params.get("mode"),
        pitr_target=params.get("pitr_target"),
        channels=runtime.channels(),
        backup_root=_access(inv).backup_root,
    )


def run_drill_task(job: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.verify.jobs import run_job

    set_label(context, job["database_id"])
    inv = runtime.inventory()
    return run_job(job, inv, _access(inv), before_checks=BEFORE_CHECKS_HOOK)


def record_drill(result: dict[str, Any], context: dict) -> dict[str, Any]:
    """Catalog, incident, audit, alert of one drill (``hisops.verify.record.record_drill``)."""
    from hisops.verify.record import record_drill as record

    set_label(context, result["database_id"])
    return record(
        runtime.catalog(), runtime.inventory(), result, run_info(context), runtime.channels()
    )


def drop_scratch(jobs: list[dict[str, Any]]) -> list[str]:
    """Teardown: planned scratch databases and leftovers of killed drills."""
    from hisops.verify.jobs import drop_scratch as drop

    inv = runtime.inventory()
    return drop(jobs, inv, _access(inv))


def verification_verdict(records: list[dict[str, Any]]) -> str:
    from hisops.verify.record import verdict

    return verdict(records)
