"""Adapters for performance_review and db_maintenance: context → arguments → one service call.

The services are in :mod:`hisops.tune.steps`; a refused request fails the task without retries.
"""

from __future__ import annotations

from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label


def _fail(message: str) -> Exception:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


# --------------------------------------------------------------------------- performance_review


def review_targets(params: dict[str, Any]) -> list[str]:
    from hisops.tune.steps import review_targets as targets

    return targets(runtime.inventory(), params.get("databases"))


def review_database(database_id: str, context: dict[str, Any]) -> str:
    """Review one database; returns the path of its stored result."""
    from hisops.tune.steps import review_one

    set_label(context, database_id)
    return review_one(
        runtime.catalog(), runtime.inventory(), database_id, runtime.dsn_for, run_info(context)
    )


def publish_review(paths: list[str], context: dict[str, Any]) -> dict[str, Any]:
    from hisops.tune.steps import publish_review as publish

    return publish(paths, runtime.inventory(), run_info(context), runtime.channels())


# --------------------------------------------------------------------------- db_maintenance


def maintenance_plan(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The plan (XCom + task log) and whether a person must approve it."""
    from hisops.tune.steps import RequestRefused
    from hisops.tune.steps import maintenance_plan as plan

    try:
        return plan(
            runtime.catalog(), runtime.inventory(), params, runtime.dsn_for, run_info(context)
        )
    except RequestRefused as exc:
        raise _fail(str(exc)) from exc


def maintenance_apply(
    plan: dict[str, Any], response: dict[str, Any] | None, context: dict[str, Any]
) -> str:
    """Gate + apply; a refused gate fails the run (already audited, nothing applied)."""
    from hisops.airflow.users import roles_of
    from hisops.tune.steps import RequestRefused
    from hisops.tune.steps import maintenance_apply as apply

    try:
        return apply(
            runtime.catalog(),
            runtime.inventory(),
            plan,
            response,
            runtime.dsn_for,
            run_info(context),
            roles_of,
        )
    except RequestRefused as exc:
        raise _fail(str(exc)) from exc


def maintenance_report(path: str, context: dict[str, Any]) -> dict[str, Any]:
    from hisops.tune.steps import maintenance_report as report

    return report(path, runtime.inventory(), run_info(context), runtime.channels())
