"""Adapters of the 每日巡检 daily-inspection DAG: context → plain arguments → one service call.

start → inspect_system (mapped, one per system) → notify_incidents → report → send_report.
The decisions and the catalog writes are in :mod:`hisops.inspect.service` and
:mod:`hisops.inspect.reporting`; these functions only gather their arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label

REPORTS_TASK = "daily_inspection"  # who checks the reports storage (hisops.airflow.shared_storage)


def _access() -> Any:
    from hisops.inspect.run import Access

    return Access(
        dsn_for=runtime.dsn_for,
        runner_for=runtime.runner_for,
        pgbackrest_for=runtime.pgbackrest_for,
    )


def start(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Open the run in the catalog; one work order per system (the mapped task's kwargs)."""
    from hisops.inspect.service import open_run

    systems = context["params"].get("systems")
    return open_run(runtime.catalog(), runtime.inventory(), run_info(context), systems)


def label_system(system_id: str, context: dict[str, Any]) -> None:
    """Name the mapped task after its system (门诊系统 Outpatient (outpatient))."""
    from hisops.inspect.service import system_label

    set_label(context, system_label(runtime.inventory(), system_id))


def inspect_system(
    system_id: str, inspection_run_id: int, historical: bool, fold_incidents: bool = True
) -> dict[str, Any]:
    """One work order (see :func:`start`): every target of the system, recorded in the catalog."""
    from hisops.inspect.service import inspect_one

    return inspect_one(
        runtime.catalog(),
        runtime.inventory(),
        system_id,
        inspection_run_id,
        historical,
        fold_incidents,
        _access(),
    )


def notify_incidents(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    from hisops.inspect.service import notify_incidents as notify

    return notify(runtime.inventory(), outcomes, channels=runtime.channels)


def report(
    plan: Sequence[Mapping[str, Any]],
    outcomes: Sequence[Mapping[str, Any]],
    context: Mapping[str, Any],
) -> dict[str, Any]:
    from hisops.airflow.shared_storage import reports_root
    from hisops.inspect.reporting import write_report

    inv, run = runtime.inventory(), run_info(context)
    period = (context.get("data_interval_start"), context.get("data_interval_end"))
    folder = reports_root(inv, REPORTS_TASK)
    return write_report(
        runtime.catalog(), inv, plan, outcomes, run.run_id, run.logical_date, period, folder
    )


def send_report(
    plan: Sequence[Mapping[str, Any]], report_info: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    from hisops.airflow.shared_storage import reports_root
    from hisops.inspect.service import send_report as send

    inv = runtime.inventory()
    reports_root(inv, REPORTS_TASK)  # is the report another worker wrote here? (fails if not)
    return send(
        runtime.catalog(), inv, plan, report_info, run_info(context), channels=runtime.channels
    )
