"""Adapters of the 运维考核月报 DAG: context → plain arguments → one service call → small dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info


def _period(inventory: Any, run: Any, params: Mapping[str, Any]) -> Any:
    from hisops.kpi.service import period_for_run

    return period_for_run(
        inventory, run, params.get("month"), params.get("start"), params.get("end")
    )


def kpi_report(context: Mapping[str, Any]) -> dict[str, Any]:
    """Build, save, record and mail the KPI report of the run's period."""
    from hisops.kpi.service import run_kpi_report

    run, inv = run_info(context), runtime.inventory()
    period = _period(inv, run, context["params"])
    return run_kpi_report(runtime.catalog(), inv, period, run, runtime.channels()).as_dict()


def evidence_pack(context: Mapping[str, Any]) -> dict[str, Any]:
    """The month's 等保 evidence archive (monthly periods only; ad-hoc periods are skipped)."""
    from hisops.kpi.evidence import build_evidence_pack

    run, inv = run_info(context), runtime.inventory()
    period = _period(inv, run, context["params"])
    return build_evidence_pack(
        runtime.catalog(),
        inv,
        period,
        run,
        wanted=bool(context["params"].get("evidence_pack", True)),
    ).as_dict()
