"""The one place that reads the Airflow task context: RunInfo and the mapped-task label.

Adapters call :func:`run_info` once and pass the plain :class:`hisops.runinfo.RunInfo` on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hisops.runinfo import RunInfo


def _run_type(value: Any) -> str:
    text = str(getattr(value, "value", value) or "manual").lower()
    return text.split(".")[-1]  # "DagRunType.SCHEDULED" → "scheduled"


def run_info(context: Mapping[str, Any]) -> RunInfo:
    """RunInfo from a TaskFlow context (``**context`` of a task)."""
    run = context.get("dag_run")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(run, "dag_id", None) or "?"
    logical: datetime | None = context.get("logical_date") or getattr(run, "logical_date", None)
    return RunInfo(
        dag_id=dag_id,
        run_id=str(context.get("run_id") or getattr(run, "run_id", "?")),
        run_type=_run_type(getattr(run, "run_type", None)),
        logical_date=logical,
        run_after=getattr(run, "run_after", None),
        triggering_user=getattr(run, "triggering_user_name", None) or None,
    )


def set_label(context: dict[str, Any], label: str) -> None:
    """Name the mapped task instance in the UI (``map_index_template=dagkit.MAP_LABEL``)."""
    from airflow.sdk import get_current_context

    context["hisops_label"] = label
    get_current_context()["hisops_label"] = label  # the context the template is rendered with
