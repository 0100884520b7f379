"""Task bodies of restore_database (数据恢复) and restore_pitr (时间点恢复); the DAGs wire them.

Each body: :func:`hisops.airflow.context.run_info` → plain arguments → one call of
:mod:`hisops.restore.service` → a small return value. What the service needs from Airflow
(connections, the roles of a user, the storage check) is handed to it as callables in
:class:`hisops.restore.service.RestoreEnv`.

Import-cheap: the DAG file imports this module at parse time; drivers and the domain modules are
imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info

if TYPE_CHECKING:
    from hisops.restore.service import RestoreEnv

TASK = "restore_database"


def _env(context: dict) -> RestoreEnv:
    from hisops.airflow.shared_storage import backup_root
    from hisops.airflow.users import roles_of
    from hisops.restore.service import RestoreEnv

    info, inv = run_info(context), runtime.inventory()
    return RestoreEnv(
        repo=runtime.catalog(),
        run=info,
        inventory=inv,
        dsn_for=runtime.dsn_for,
        channels=runtime.channels(),
        roles_of=roles_of,
        check_storage=lambda: backup_root(inv, TASK),
        dump_spec=lambda database_id: runtime.dump_spec(
            database_id, dag_id=info.dag_id, run_id=info.run_id, who=info.actor
        ),
        pgbackrest_for=runtime.pgbackrest_for,
    )


def _refusal_fails_run(
    authorize: Callable[[RestoreEnv, dict[str, Any]], dict[str, Any]],
    params: dict[str, Any],
    context: dict,
) -> dict[str, Any]:
    """``authorize(env, params)``; a refusal fails the run without retry."""
    from airflow.sdk.exceptions import AirflowFailException

    from hisops.restore.errors import Refused

    try:
        return authorize(_env(context), params)
    except Refused as exc:
        raise AirflowFailException(str(exc)) from exc


def authorize_restore(params: dict[str, Any], context: dict) -> dict[str, Any]:
    """Form, confirmation, role, backup choice; a refusal fails the run without retry."""
    from hisops.restore.service import authorize_restore as authorize

    return _refusal_fails_run(authorize, params, context)


def stage_restore(plan: dict[str, Any], context: dict) -> dict[str, Any]:
    """Checksums, then pg_restore into the staging database (production untouched)."""
    from hisops.airflow.connections import backup_encryption_key
    from hisops.restore.service import stage_restore as stage

    return stage(_env(context), plan, backup_encryption_key(plan["backup_dir"]))


def safety_backup(staged: dict[str, Any], context: dict) -> int | None:
    """overwrite only: a normal, catalogued backup of the production database about to be
    replaced."""
    from hisops.restore.service import safety_backup as backup

    return backup(_env(context), staged)


def switch_restore(
    staged: dict[str, Any], safety_backup_id: int | None, context: dict
) -> dict[str, Any]:
    """Make the restored data live: rename staging → new database, or swap it with production."""
    from hisops.restore.service import switch_restore as switch

    return switch(_env(context), staged, safety_backup_id)


def drop_restore_staging(plan: dict[str, Any] | None, context: dict) -> bool:
    """Teardown: drop the staging database if a failed run left it (hisops_restore_* only)."""
    from hisops.restore.service import drop_restore_staging as drop

    return drop(_env(context), plan)


# --- restore_pitr ---------------------------------------------------------------------------------


def authorize_pitr_restore(params: dict[str, Any], context: dict) -> dict[str, Any]:
    """Form, typed server id, role, backup set; a refusal fails the run without retry."""
    from hisops.restore.pitr import authorize_pitr_restore as authorize

    return _refusal_fails_run(authorize, params, context)


def run_pitr_restore(plan: dict[str, Any], context: dict) -> dict[str, Any]:
    """pgbackrest restore to the point into a new cluster that keeps running; small result."""
    from hisops.restore.pitr import run_pitr_restore as restore

    return restore(_env(context), plan)
