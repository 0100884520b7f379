"""Which DAG run a piece of work belongs to, as plain data (no Airflow import).

Built once per task by :func:`hisops.airflow.context.run_info`; domain services take it to name
the actor of audit events, link catalog rows to the run and decide what a run may change
(a backfill of a past day must not move log offsets nor open/resolve incidents).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RunInfo:
    dag_id: str
    run_id: str
    #: Airflow's DagRunType value: "scheduled", "manual", "backfill", "asset_triggered", …
    run_type: str = "manual"
    logical_date: datetime | None = None
    #: when the run was due (for a scheduled run: the end of its data interval)
    run_after: datetime | None = None
    #: the authenticated user who triggered it (UI/REST/CLI); None for scheduler/asset runs
    triggering_user: str | None = None

    @property
    def actor(self) -> str:
        """Who the audit trail names: the triggering person, else the DAG (scheduler)."""
        return self.triggering_user or f"{self.dag_id} (scheduler)"

    @property
    def is_scheduled(self) -> bool:
        return self.run_type == "scheduled"

    @property
    def is_backfill(self) -> bool:
        return self.run_type == "backfill"

    @property
    def is_manual(self) -> bool:
        return self.run_type == "manual"

    def audit_fields(self) -> dict[str, str]:
        """``dag_id``/``run_id`` keywords for ``CatalogRepository.add_audit_event``."""
        return {"dag_id": self.dag_id, "run_id": self.run_id}
