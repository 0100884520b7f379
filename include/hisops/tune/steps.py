"""performance_review and db_maintenance, one function per DAG task (the adapters in
``hisops.airflow.tune_tasks`` only gather the arguments and turn :class:`RequestRefused` into a
failed task). Reviews and maintenance record for themselves (:mod:`hisops.tune.review`,
:mod:`hisops.tune.maintenance`); a refused request is audited here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Database, Inventory
    from hisops.notify import Channel
    from hisops.runinfo import RunInfo

DsnFor = Callable[["Database"], str]


class RequestRefused(Exception):
    """Nothing was done; the reason (Chinese and English) is already in the audit trail."""


# --------------------------------------------------------------------------- performance_review


def review_targets(inventory: Inventory, wanted: Sequence[str] | None) -> list[str]:
    from hisops.tune.review import select_databases

    return select_databases(inventory, wanted)


def review_one(
    repo: CatalogRepository, inventory: Inventory, database_id: str, dsn_for: DsnFor, run: RunInfo
) -> str:
    """Review one database; returns the path of its stored result (tasks pass only the path)."""
    from hisops.tune.review import review_database, save_result

    _, db = inventory.locate_database(database_id)
    result = review_database(repo, inventory, database_id, dsn_for(db), run)
    return save_result(result, inventory, run)


def publish_review(
    paths: Sequence[str], inventory: Inventory, run: RunInfo, channels: Sequence[Channel]
) -> dict[str, Any]:
    from hisops.tune.review import load_results, publish

    return publish(load_results(list(paths)), inventory, run, channels=channels)


# --------------------------------------------------------------------------- db_maintenance


def maintenance_plan(
    repo: CatalogRepository,
    inventory: Inventory,
    params: dict[str, Any],
    dsn_for: DsnFor,
    run: RunInfo,
) -> dict[str, Any]:
    """The plan (XCom + task log) and whether a person must approve it; an unknown database is
    refused and audited."""
    from hisops.tune import maintenance as m

    database_id = params.get("database_id") or ""
    try:
        _, db = inventory.locate_database(database_id)
    except KeyError as exc:
        repo.add_audit_event(
            run.actor,
            m.ACTION,
            database_id or "?",
            "refused",
            {"reason": str(exc)},
            **run.audit_fields(),
        )
        raise RequestRefused(f"拒绝 refused: {exc}") from exc
    plan = m.plan_database(
        repo, inventory, database_id, dsn_for(db), run, params.get("kinds") or None
    )
    dry_run = m.resolve_dry_run(params.get("dry_run") or "auto", run)
    needed = m.approval_needed(plan, run, inventory, dry_run)
    return {**plan.as_dict(), "text": plan.text(), "dry_run": dry_run, "approval": needed.as_dict()}


def maintenance_apply(
    repo: CatalogRepository,
    inventory: Inventory,
    plan: dict[str, Any],
    response: dict[str, Any] | None,
    dsn_for: DsnFor,
    run: RunInfo,
    roles_of: Callable[[str], set[str]],
) -> str:
    """Gate + apply; a refused gate (already audited, nothing applied) is :class:`RequestRefused`.
    Returns the path of the stored result."""
    from hisops.tune import maintenance as m

    _, db = inventory.locate_database(plan["database_id"])
    approval = m.approval_verdict(response or {}, run, roles_of)
    try:
        result = m.apply_plan(
            repo,
            inventory,
            db.id,
            dsn_for(db),
            m.plan_from_dict(plan),
            run,
            approval=approval,
            dry_run=plan["dry_run"],
        )
    except m.MaintenanceRefused as exc:
        raise RequestRefused(
            f"维护被拒绝，未执行任何步骤 maintenance refused, nothing applied: {exc}"
        ) from exc
    return m.save_result(result, inventory, run)


def maintenance_report(
    path: str, inventory: Inventory, run: RunInfo, channels: Sequence[Channel]
) -> dict[str, Any]:
    from hisops.tune.maintenance import publish

    return publish(path, inventory, run, channels=channels)
