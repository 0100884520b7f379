"""retention_cleanup task bodies: Airflow context → plain arguments → one cleanup service call.

The steps, their recording in the catalog and the report are in :mod:`hisops.cleanup.service`
and :mod:`hisops.cleanup.finish`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info

DRY_RUN_CHOICES = ("auto", "yes", "no")
#: the metadata DB connection for `airflow db clean` (a role with hisops.cleanup.airflow_meta.
#: CLEANER_GRANTS); without it, the role lookup's `hisops_airflow_db` is tried (needs those
#: grants too)
AIRFLOW_CLEAN_CONN_ID = "hisops_airflow_clean"
AIRFLOW_DB_CONN_ID = "hisops_airflow_db"


def start(context: dict) -> dict[str, Any]:
    from hisops.cleanup import service

    choice = context["params"]["dry_run"]
    return service.open_run(runtime.catalog(), runtime.inventory(), run_info(context), choice)


def host_files(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.cleanup import service

    return service.host_files(
        runtime.catalog(),
        runtime.inventory(),
        started,
        dsn_for=runtime.dsn_for,
        runner_for=runtime.runner_for,
    )


def catalog_records(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.cleanup import service

    return service.catalog_records(runtime.catalog(), runtime.inventory(), started)


def _metadata_url() -> str:
    """SQLAlchemy URL of the metadata DB for `airflow db clean` (any postgres connection)."""
    from hisops.airflow.connections import catalog_sqlalchemy_url

    try:
        return catalog_sqlalchemy_url(AIRFLOW_CLEAN_CONN_ID)
    except Exception:  # noqa: BLE001 - not defined: fall back to the role lookup's connection
        return catalog_sqlalchemy_url(AIRFLOW_DB_CONN_ID)


def airflow_metadata(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.cleanup import service

    return service.airflow_metadata(
        runtime.catalog(), runtime.inventory(), started, _metadata_url()
    )


def task_logs(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from airflow.configuration import conf

    from hisops.cleanup import service
    from hisops.targets.runner import LocalRunner

    folder = Path(conf.get("logging", "base_log_folder"))
    return service.task_logs(
        runtime.catalog(), runtime.inventory(), started, folder, LocalRunner("airflow")
    )


def report(started: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.cleanup.finish import finish_run

    return finish_run(
        runtime.catalog(),
        runtime.inventory(),
        started["cleanup_run_id"],
        run_info(context),
        channels=runtime.channels(),
    )
