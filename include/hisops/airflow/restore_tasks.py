"""Task bodies of restore_database (数据恢复); the DAG file only wires them.

Import-cheap: the DAG file imports this module at parse time; drivers and the domain modules are
imported inside the functions. Who asked: :func:`hisops.airflow.context.run_info`; the roles of
that user: :func:`hisops.airflow.users.roles_of`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info

log = logging.getLogger(__name__)

RESTORE_ACTION = "restore"


def _database(database_id: str) -> Any:
    """The inventory database (KeyError naming the known ids)."""
    return runtime.inventory().locate_database(database_id)[1]


def _audit(context: dict, action: str, target: str, result: str, details: dict[str, Any]) -> None:
    info = run_info(context)
    runtime.catalog().add_audit_event(
        actor=info.actor,
        action=action,
        target=target,
        result=result,
        details=details,
        **info.audit_fields(),
    )


# --- restore_database: the steps -----------------------------------------------------------------


def _production_db(db: Any) -> str:
    from psycopg2.extensions import parse_dsn

    return parse_dsn(runtime.dsn_for(db)).get("dbname", "")


def _refusal(
    context: dict, database_id: str, params: dict[str, Any], reason: str, user: str | None
) -> Exception:
    """Audit a refused attempt (result "refused") and return the exception that fails the run, no retry."""
    from airflow.sdk.exceptions import AirflowFailException

    _audit(
        context,
        RESTORE_ACTION,
        database_id or "?",
        "refused",
        {
            "reason": reason,
            "params": {k: v for k, v in params.items() if k != "confirm"},
            "confirm_given": bool(params.get("confirm")),
            "user": user,
        },
    )
    log.error("%s", reason)
    return AirflowFailException(reason)


def _request(params: dict[str, Any], user: str | None, roles: set[str]) -> Any:
    from hisops.verify.restore import RestoreRequest, parse_backup_param

    return RestoreRequest(
        database_id=params["database_id"],
        backup=parse_backup_param(params["backup_id"]),
        target=params.get("target") or "new_database",
        new_database_name=params.get("new_database_name") or None,
        confirm=params.get("confirm"),
        user=user,
        roles=frozenset(roles),
    )


def _plan(req: Any, db: Any, user: str) -> Any:
    from hisops.airflow.shared_storage import backup_root
    from hisops.backup import trust
    from hisops.verify import scratch
    from hisops.verify.restore import (
        RestorePlan,
        RestoreRefused,
        check_new_name,
        choose_backup,
        default_new_name,
    )

    backup_root(runtime.inventory(), "restore_database")
    repo, kw = runtime.catalog(), {"channels": runtime.channels(), "actor": user}
    trust.last_restorable(repo, runtime.inventory(), db.id, **kw)  # vanished ones → missing first
    record = choose_backup(repo.backups_for(db.id), req.backup, db.id)
    check = trust.ensure_present(repo, record, **kw)
    if not check.ok:
        raise RestoreRefused(
            f"备份 #{record.id} 的文件已不在：{check.summary}",
            f"backup #{record.id} files are not there: {check.summary}",
        )
    production = _production_db(db)
    if req.target == "overwrite":
        target = production
    else:
        target = req.new_database_name or default_new_name(db.id, record.id)
        check_new_name(target, scratch.database_exists(runtime.dsn_for(db), target))
    return RestorePlan(
        database_id=db.id,
        backup_id=record.id,
        backup_dir=record.path,
        target=req.target,
        target_db=target,
        staging_db=scratch.staging_name(db.id, record.id),
        production_db=production,
        user=user,
    )


def authorize_restore(params: dict[str, Any], context: dict) -> dict[str, Any]:
    """Validate the form, check confirmation and role, resolve the backup; refusals are audited."""
    from dataclasses import replace

    from hisops.airflow.users import RoleLookupError, roles_of
    from hisops.verify.restore import RestoreRefused, authorize, check_confirmation

    info = run_info(context)
    user = info.triggering_user
    database_id = params.get("database_id") or ""
    try:
        db = _database(database_id)
        req = _request(params, user, set())
        check_confirmation(req)  # before asking anyone about roles
        if req.target == "overwrite":
            req = replace(req, roles=frozenset(roles_of(user)))
        authorize(req)
        plan = _plan(req, db, info.actor)
    except (RestoreRefused, RoleLookupError, KeyError, ValueError) as exc:
        reason = str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
        raise _refusal(context, database_id, params, reason, user) from exc
    log.info(
        "已授权 authorized: %s restores backup #%s of %s → %s (%s)",
        plan.user,
        plan.backup_id,
        plan.database_id,
        plan.target_db,
        plan.target,
    )
    _audit(context, "restore_authorized", plan.database_id, "success", plan.as_dict())
    return plan.as_dict()


def stage_restore(plan: dict[str, Any], context: dict) -> dict[str, Any]:
    """Checksums, then pg_restore into the staging database (production untouched)."""
    from hisops.airflow.connections import backup_encryption_key
    from hisops.verify.restore import RestorePlan, stage

    db = _database(plan["database_id"])
    p = RestorePlan(**plan)
    try:
        seconds = stage(
            p,
            runtime.dsn_for(db),
            jobs=db.backup.jobs,
            pg_bindir=db.pg_bindir,
            encryption_key=backup_encryption_key(Path(p.backup_dir)),
        )
    except Exception as exc:
        _audit(
            context,
            RESTORE_ACTION,
            p.database_id,
            "failure",
            {**plan, "step": "stage", "error": str(exc)[:1000]},
        )
        raise
    log.info("已恢复到暂存库 restored into staging database %s in %.1fs", p.staging_db, seconds)
    return {**plan, "restore_seconds": seconds}


def safety_backup(staged: dict[str, Any], context: dict) -> int | None:
    """overwrite only: a normal, catalogued backup of the production database about to be replaced."""
    from hisops.backup.dump import backup_database

    if staged["target"] != "overwrite":
        log.info(
            "恢复到新库，无需安全备份 restoring to a new database: nothing is overwritten, no safety backup"
        )
        return None
    try:
        info = run_info(context)
        spec = runtime.dump_spec(
            staged["database_id"], dag_id=info.dag_id, run_id=info.run_id, who=info.actor
        )
        outcome = backup_database(spec, runtime.catalog()).as_dict()
    except Exception as exc:
        _audit(
            context,
            RESTORE_ACTION,
            staged["database_id"],
            "failure",
            {**staged, "step": "safety_backup", "error": str(exc)[:1000]},
        )
        raise
    log.info(
        "安全备份完成 safety backup #%s of %s: %s",
        outcome["backup_id"],
        staged["database_id"],
        outcome["path"],
    )
    return outcome["backup_id"]


def switch_restore(
    staged: dict[str, Any], safety_backup_id: int | None, context: dict
) -> dict[str, Any]:
    """Make the restored data live: rename staging → new database, or swap it with production."""
    from hisops.verify.restore import RestorePlan, switch_new_database, switch_overwrite

    db = _database(staged["database_id"])
    plan = RestorePlan(**{k: v for k, v in staged.items() if k in RestorePlan.__dataclass_fields__})
    if plan.target == "overwrite" and not safety_backup_id:
        raise RuntimeError("没有安全备份，拒绝覆盖 no safety backup: refusing to overwrite")
    details = {**staged, "safety_backup_id": safety_backup_id}
    try:
        switch = switch_overwrite if plan.target == "overwrite" else switch_new_database
        outcome = switch(runtime.dsn_for(db), plan)
    except Exception as exc:
        _audit(
            context,
            RESTORE_ACTION,
            plan.database_id,
            "failure",
            {**details, "step": "switch", "error": str(exc)[:1000]},
        )
        raise
    details.update(outcome.as_dict())
    _audit(context, RESTORE_ACTION, plan.database_id, "success", details)
    log.info(
        "恢复完成 restore done: backup #%s of %s is now database %s%s",
        plan.backup_id,
        plan.database_id,
        outcome.target_db,
        f" (old data kept as {outcome.previous_db})" if outcome.previous_db else "",
    )
    return details


def drop_restore_staging(plan: dict[str, Any] | None) -> bool:
    """Teardown: drop the staging database if a failed run left it (guarded: hisops_restore_* only)."""
    from hisops.verify.restore import drop_staging

    if not plan:
        return False
    db = _database(plan["database_id"])
    return drop_staging(runtime.dsn_for(db), plan["staging_db"])
