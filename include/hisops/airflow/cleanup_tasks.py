"""retention_cleanup task bodies: Airflow context → plain arguments → one cleanup service call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info

DRY_RUN_CHOICES = ("auto", "yes", "no")
#: the metadata DB connection for `airflow db clean` (a role with hisops.cleanup.airflow_meta.
#: CLEANER_GRANTS); without it, the role lookup's `hisops_airflow_db` is tried (needs those grants too)
AIRFLOW_CLEAN_CONN_ID = "hisops_airflow_clean"
AIRFLOW_DB_CONN_ID = "hisops_airflow_db"


def _counts(steps: list[Any]) -> dict[str, Any]:
    return {
        "steps": len(steps),
        "files": sum(s.files for s in steps),
        "rows": sum(s.rows for s in steps),
        "bytes_freed": sum(s.bytes_freed for s in steps),
        "failed": sum(1 for s in steps if s.state in ("failed", "protected")),
    }


def start(context: dict) -> dict[str, Any]:
    from hisops.cleanup import service

    run, inv = run_info(context), runtime.inventory()
    dry_run = service.resolve_dry_run(
        context["params"]["dry_run"], run, inv.maintenance_window, tz=inv.timezone
    )
    return {
        "cleanup_run_id": service.start_run(runtime.catalog(), run, dry_run),
        "dry_run": dry_run,
    }


def host_files(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.cleanup import service

    inv = runtime.inventory()
    extra, notes = service.server_data_directories(inv, runtime.dsn_for)
    steps = service.clean_host_files(
        runtime.catalog(),
        inv,
        started["cleanup_run_id"],
        dry_run=started["dry_run"],
        runner_for=runtime.runner_for,
        extra_protected=extra,
        notes=notes,
    )
    return _counts(steps)


def catalog_records(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.cleanup import records

    repo = runtime.catalog()
    steps = records.prune_records(repo, runtime.inventory(), dry_run=started["dry_run"])
    repo.add_cleanup_steps(
        started["cleanup_run_id"], [s.record() for s in steps], replace_scope="catalog"
    )
    return _counts(steps)


def airflow_metadata(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.airflow.connections import catalog_sqlalchemy_url
    from hisops.cleanup import airflow_meta

    inv = runtime.inventory()
    try:
        url = catalog_sqlalchemy_url(
            AIRFLOW_CLEAN_CONN_ID
        )  # any postgres connection → SQLAlchemy URL
    except Exception:  # noqa: BLE001 - not defined: fall back to the role lookup's connection
        url = catalog_sqlalchemy_url(AIRFLOW_DB_CONN_ID)
    before = datetime.now(UTC) - timedelta(days=inv.record_retention.airflow_metadata_days)
    steps = airflow_meta.clean_metadata(
        url, before, dry_run=started["dry_run"], batch_size=inv.record_retention.batch_rows
    )
    runtime.catalog().add_cleanup_steps(
        started["cleanup_run_id"], [s.record() for s in steps], replace_scope="airflow"
    )
    return _counts(steps)


def task_logs(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from airflow.configuration import conf

    from hisops.cleanup import airflow_meta
    from hisops.cleanup.hostfiles import FileSink
    from hisops.targets.runner import LocalRunner

    inv, repo = runtime.inventory(), runtime.catalog()
    cid = started["cleanup_run_id"]
    repo.clear_cleanup_files(cid, ["airflow"])
    sink = FileSink(lambda rows: repo.add_cleanup_files(cid, rows), print)
    protected = inv.protected_paths()  # backup storage, reports and evidence
    steps = airflow_meta.clean_task_logs(
        Path(conf.get("logging", "base_log_folder")),
        inv.record_retention.task_logs_days,
        LocalRunner("airflow"),
        dry_run=started["dry_run"],
        sink=sink,
        protected=protected,
    )
    repo.add_cleanup_steps(cid, [s.record() for s in steps], replace_scope="task_logs")
    return _counts(steps)


def report(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.airflow.notify_glue import channels_from_inventory
    from hisops.cleanup.finish import finish_run

    inv = runtime.inventory()
    return finish_run(
        runtime.catalog(),
        inv,
        started["cleanup_run_id"],
        run_info(context),
        channels=channels_from_inventory(inv.notifications, strict=False),
    )
