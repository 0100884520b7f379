"""The restore_database steps as the DAG runs them; each one audits itself in the catalog.

1. :func:`authorize_restore` — form, typed confirmation, role (asked only for an overwrite whose
   confirmation is right), backup choice (only backups whose files storage still has:
   :mod:`hisops.backup.trust`); a refusal is audited (result ``refused``) and raised as
   :class:`~hisops.restore.errors.Refused`;
2. :func:`stage_restore` — checksums, then pg_restore into the staging database;
3. :func:`safety_backup` — overwrite only: a normal, catalogued hisops backup of what is about to
   be replaced (taken last, right before the switch, so it holds the latest state; drilled like
   any other backup);
4. :func:`switch_restore` — staging → new database, or swapped with production;
5. :func:`drop_restore_staging` — teardown: a staging database a failed run left.

What needs Airflow (connections, the roles of a user, the storage check) comes in through
:class:`RestoreEnv` as plain callables, so this module imports no Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hisops.restore.errors import Refused, RestoreRefused
from hisops.restore.request import (
    LATEST_VERIFIED,
    RestorePlan,
    authorize,
    check_confirmation,
    choose_backup,
    no_verified_backup,
    request_from_form,
)

if TYPE_CHECKING:
    from hisops.backup.dump import DumpSpec
    from hisops.catalog.records import BackupRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Database, Inventory, PgServer
    from hisops.notify.channels import Channel
    from hisops.pitr.pgbackrest import PgBackRest
    from hisops.runinfo import RunInfo

log = logging.getLogger(__name__)

RESTORE_ACTION = "restore"
AUTHORIZED_ACTION = "restore_authorized"
ERROR_CHARS = 1000


@dataclass(frozen=True)
class RestoreEnv:
    """What the steps work with: the catalog, the run, and the Airflow-side lookups as callables."""

    repo: CatalogRepository
    run: RunInfo
    inventory: Inventory
    #: DSN of an inventory database (its Airflow connection)
    dsn_for: Callable[[Any], str]
    channels: Sequence[Channel] = ()
    #: the roles of a user (raises when they cannot be read: the overwrite is then refused)
    roles_of: Callable[[str | None], Iterable[str]] = lambda _user: ()
    #: raises when this worker does not see the catalog's backup storage
    check_storage: Callable[[], object] = lambda: None
    #: DumpSpec of a database for the safety backup (who/which run filled in)
    dump_spec: Callable[[str], DumpSpec] | None = None
    #: pgBackRest of an inventory server (point-in-time restores)
    pgbackrest_for: Callable[[PgServer], PgBackRest] | None = None

    def audit(self, action: str, target: str, result: str, details: dict[str, Any]) -> None:
        self.repo.add_audit_event(
            actor=self.run.actor,
            action=action,
            target=target,
            result=result,
            details=details,
            **self.run.audit_fields(),
        )

    def database(self, database_id: str) -> Database:
        return self.inventory.locate_database(database_id)[1]

    def failure(self, target: str, details: dict[str, Any], step: str, exc: BaseException) -> None:
        error = str(exc)[:ERROR_CHARS]
        self.audit(RESTORE_ACTION, target, "failure", {**details, "step": step, "error": error})


def production_db(dsn: str) -> str:
    """The database name a connection points at (production for this inventory database)."""
    from hisops.targets.postgres import dsn_dbname

    return dsn_dbname(dsn) or ""


# --- 1. authorize ---------------------------------------------------------------------------------


def _record_to_restore(env: RestoreEnv, db: Database, backup: int | str) -> BackupRecord:
    from hisops.backup import trust

    env.check_storage()
    kw: dict[str, Any] = {"channels": env.channels, "actor": env.run.actor}
    newest = trust.last_restorable(env.repo, env.inventory, db.id, **kw)  # vanished → missing
    if backup == LATEST_VERIFIED:
        if newest is None:
            raise no_verified_backup(db.id)
        return newest
    record = choose_backup(env.repo.backups_for(db.id), backup, db.id)
    check = trust.ensure_present(env.repo, record, **kw)
    if not check.ok:
        raise RestoreRefused(
            f"备份 #{record.id} 的文件已不在：{check.summary}",
            f"backup #{record.id} files are not there: {check.summary}",
        )
    return record


def _plan(env: RestoreEnv, req: Any, db: Database) -> RestorePlan:
    from hisops.restore.names import check_new_name, default_new_name, staging_name
    from hisops.verify import scratch

    record = _record_to_restore(env, db, req.backup)
    server_dsn = env.dsn_for(db)
    production = production_db(server_dsn)
    if req.target == "overwrite":
        target = production
    else:
        target = req.new_database_name or default_new_name(db.id, record.id)
        check_new_name(target, scratch.database_exists(server_dsn, target))
    return RestorePlan(
        database_id=db.id,
        backup_id=record.id,
        backup_dir=record.path,
        target=req.target,
        target_db=target,
        staging_db=staging_name(db.id, record.id),
        production_db=production,
        user=env.run.actor,
    )


def refuse(
    env: RestoreEnv,
    target: str,
    params: dict[str, Any],
    reason: str,
    action: str = RESTORE_ACTION,
) -> Refused:
    """Audit a refused attempt (result "refused", the form without 'confirm'); the returned
    exception fails the run."""
    env.audit(
        action,
        target or "?",
        "refused",
        {
            "reason": reason,
            "params": {k: v for k, v in params.items() if k != "confirm"},
            "confirm_given": bool(params.get("confirm")),
            "user": env.run.triggering_user,
        },
    )
    log.error("%s", reason)
    return Refused(reason)


class RolesUnreadable(RuntimeError):
    """The roles of the triggering user could not be read (the overwrite is then refused)."""


def roles_of_user(env: RestoreEnv, user: str | None) -> frozenset[str]:
    """The roles of ``user`` through the env's lookup; RolesUnreadable when it cannot tell."""
    try:
        return frozenset(env.roles_of(user))
    except Exception as exc:  # noqa: BLE001 - whatever the lookup raises, the answer is "refused"
        raise RolesUnreadable(str(exc)) from exc


def reason_of(exc: Exception) -> str:
    """The refusal's text (a KeyError's message without the quotes ``str()`` adds)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def authorize_restore(env: RestoreEnv, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the form, check confirmation and role, resolve the backup; the plan as a dict.
    Refusals are audited and raised as :class:`Refused`; production is untouched."""
    database_id = params.get("database_id") or ""
    try:
        db = env.database(database_id)
        req = request_from_form(params, env.run.triggering_user)
        check_confirmation(req)  # before asking anyone about roles
        if req.target == "overwrite":
            req = replace(req, roles=roles_of_user(env, req.user))
        authorize(req)
        plan = _plan(env, req, db)
    except (RestoreRefused, RolesUnreadable, LookupError, ValueError) as exc:
        raise refuse(env, database_id, params, reason_of(exc)) from exc
    log.info(
        "已授权 authorized: %s restores backup #%s of %s → %s (%s)",
        plan.user,
        plan.backup_id,
        plan.database_id,
        plan.target_db,
        plan.target,
    )
    env.audit(AUTHORIZED_ACTION, plan.database_id, "success", plan.as_dict())
    return plan.as_dict()


# --- 2. stage -------------------------------------------------------------------------------------


def stage_restore(
    env: RestoreEnv, plan: dict[str, Any], encryption_key: str | None = None
) -> dict[str, Any]:
    """Checksums, then pg_restore into the staging database (production untouched)."""
    from hisops.restore.stage import stage

    p = RestorePlan.from_dict(plan)
    db = env.database(p.database_id)
    try:
        seconds = stage(
            p,
            env.dsn_for(db),
            jobs=db.backup.jobs,
            pg_bindir=db.pg_bindir,
            encryption_key=encryption_key,
        )
    except Exception as exc:
        env.failure(p.database_id, plan, "stage", exc)
        raise
    log.info("已恢复到暂存库 restored into staging database %s in %.1fs", p.staging_db, seconds)
    return {**plan, "restore_seconds": seconds}


# --- 3. safety backup -----------------------------------------------------------------------------


def safety_backup(env: RestoreEnv, staged: dict[str, Any]) -> int | None:
    """overwrite only: a normal, catalogued backup of the production database about to be
    replaced (through the backup service, :func:`hisops.backup.dump.backup_database`)."""
    from hisops.backup.dump import backup_database

    if staged["target"] != "overwrite":
        log.info(
            "恢复到新库，无需安全备份 restoring to a new database: "
            "nothing is overwritten, no safety backup"
        )
        return None
    try:
        if env.dump_spec is None:
            raise RuntimeError("没有安全备份的配置 no backup specification for the safety backup")
        outcome = backup_database(env.dump_spec(staged["database_id"]), env.repo)
    except Exception as exc:
        env.failure(staged["database_id"], staged, "safety_backup", exc)
        raise
    log.info(
        "安全备份完成 safety backup #%s of %s: %s",
        outcome.backup_id,
        staged["database_id"],
        outcome.path,
    )
    return outcome.backup_id


# --- 4. switch ------------------------------------------------------------------------------------


def switch_restore(
    env: RestoreEnv, staged: dict[str, Any], safety_backup_id: int | None
) -> dict[str, Any]:
    """Make the restored data live: rename staging → new database, or swap it with production."""
    from hisops.restore.switch import switch_new_database, switch_overwrite

    plan = RestorePlan.from_dict(staged)
    if plan.target == "overwrite" and not safety_backup_id:
        raise RuntimeError("没有安全备份，拒绝覆盖 no safety backup: refusing to overwrite")
    details = {**staged, "safety_backup_id": safety_backup_id}
    try:
        switch = switch_overwrite if plan.target == "overwrite" else switch_new_database
        outcome = switch(env.dsn_for(env.database(plan.database_id)), plan)
    except Exception as exc:
        env.failure(plan.database_id, details, "switch", exc)
        raise
    details.update(outcome.as_dict())
    env.audit(RESTORE_ACTION, plan.database_id, "success", details)
    log.info(
        "恢复完成 restore done: backup #%s of %s is now database %s%s",
        plan.backup_id,
        plan.database_id,
        outcome.target_db,
        f" (old data kept as {outcome.previous_db})" if outcome.previous_db else "",
    )
    return details


# --- 5. teardown ----------------------------------------------------------------------------------


def drop_restore_staging(env: RestoreEnv, plan: dict[str, Any] | None) -> bool:
    """Drop the staging database if a failed run left it (guarded: ``hisops_restore_*`` only)."""
    from hisops.restore.stage import drop_staging

    if not plan:
        return False
    return drop_staging(env.dsn_for(env.database(plan["database_id"])), plan["staging_db"])
