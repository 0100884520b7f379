"""Task body of the 安全审计 security_audit DAG (the DAG file only wires it)."""

from __future__ import annotations

from typing import Any

REPORTS_TASK = "security_audit"  # who checks the reports storage (hisops.airflow.shared_storage)


def run_audit(context: dict[str, Any]) -> dict[str, Any]:
    """Context → one call of the security service → counts and the report path."""
    from hisops.airflow import runtime
    from hisops.airflow.context import run_info
    from hisops.airflow.shared_storage import reports_root
    from hisops.security.run import run_security_audit

    inventory = runtime.inventory()
    result = run_security_audit(
        runtime.catalog(),
        inventory,
        run_info(context),
        dsn_for=runtime.dsn_for,
        runner_for=runtime.runner_for,
        reports_dir=reports_root(inventory, REPORTS_TASK),
    )
    return result.as_dict()
