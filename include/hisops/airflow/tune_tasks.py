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

    return publish(load_results(list(paths)), runtime.inventory(), run_info(context), channels=_channels())
