"""Adapters for performance_review and db_maintenance: context → arguments → one service call."""

from __future__ import annotations

import logging
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label

log = logging.getLogger(__name__)


def _channels() -> list[Any]:
    from hisops.airflow.notify_glue import channels_from_inventory

    return channels_from_inventory(runtime.inventory().notifications, strict=False)


# --------------------------------------------------------------------------- performance_review


def review_targets(params: dict[str, Any]) -> list[str]:
    from hisops.tune.review import select_databases

    return select_databases(runtime.inventory(), params.get("databases"))


def review_database(database_id: str, context: dict[str, Any]) -> str:
    """Review one database; returns the path of its stored result."""
    from hisops.tune.review import review_database as review
    from hisops.tune.review import save_result

    set_label(context, database_id)
    inv = runtime.inventory()
    _, db = inv.locate_database(database_id)
    run = run_info(context)
    result = review(runtime.catalog(), inv, database_id, runtime.dsn_for(db), run)
    return save_result(result, inv, run)


def publish_review(paths: list[str], context: dict[str, Any]) -> dict[str, Any]:
    from hisops.tune.review import load_results, publish

    return publish(
        load_results(list(paths)), runtime.inventory(), run_info(context), channels=_channels()
    )


# --------------------------------------------------------------------------- db_maintenance


def _fail(message: str) -> Exception:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


def maintenance_plan(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The plan (XCom + task log) and whether a person must approve it."""
    from hisops.tune import maintenance as m

    inv, run = runtime.inventory(), run_info(context)
    database_id = params.get("database_id") or ""
    try:
        _, db = inv.locate_database(database_id)
    except KeyError as exc:
        runtime.catalog().add_audit_event(
            run.actor,
            m.ACTION,
            database_id or "?",
            "refused",
            {"reason": str(exc)},
            **run.audit_fields(),
        )
        raise _fail(f"拒绝 refused: {exc}") from exc
    plan = m.plan_database(
        runtime.catalog(), inv, database_id, runtime.dsn_for(db), run, params.get("kinds") or None
    )
    dry_run = m.resolve_dry_run(params.get("dry_run") or "auto", run)
    needed = m.approval_needed(plan, run, inv, dry_run)
    return {**plan.as_dict(), "text": plan.text(), "dry_run": dry_run, "approval": needed.as_dict()}


def maintenance_apply(
    plan: dict[str, Any], response: dict[str, Any] | None, context: dict[str, Any]
) -> str:
    """Gate + apply; a refused gate fails the run (already audited, nothing applied)."""
    from hisops.airflow.users import roles_of
    from hisops.tune import maintenance as m

    inv, run = runtime.inventory(), run_info(context)
    _, db = inv.locate_database(plan["database_id"])
    approval = m.approval_verdict(response or {}, run, roles_of)
    try:
        result = m.apply_plan(
            runtime.catalog(),
            inv,
            db.id,
            runtime.dsn_for(db),
            m.plan_from_dict(plan),
            run,
            approval=approval,
            dry_run=plan["dry_run"],
        )
    except m.MaintenanceRefused as exc:
        raise _fail(
            f"维护被拒绝，未执行任何步骤 maintenance refused, nothing applied: {exc}"
        ) from exc
    return m.save_result(result, inv, run)


def maintenance_report(path: str, context: dict[str, Any]) -> dict[str, Any]:
    from hisops.tune import maintenance as m

    return m.publish(path, runtime.inventory(), run_info(context), channels=_channels())
