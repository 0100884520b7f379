"""The db_maintenance approval step: Airflow's human-in-the-loop ApprovalOperator, asked only when a
person must decide (the plan says so), and never skipping downstream itself — the apply task
judges the response (role ≥ 系统管理员, approver ≠ requester) and audits a refusal."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

PLAN_TASK = "plan"


class MaintenanceApproval(ApprovalOperator):
    """Waits for Approve/Reject in the UI (Required actions) unless the plan needs no person."""

    def execute(self, context: Any) -> Any:
        plan = context["ti"].xcom_pull(task_ids=PLAN_TASK) or {}
        approval = plan.get("approval") or {}
        if approval.get("ok"):
            self.log.info(
                "no approval needed: %s / %s", approval.get("reason_zh"), approval.get("reason_en")
            )
            return {
                "auto": True,
                "reason_zh": approval.get("reason_zh"),
                "reason_en": approval.get("reason_en"),
            }
        self.log.info("维护计划 plan awaiting approval:\n%s", plan.get("text"))
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        payload = HITLOperator.execute_complete(self, context, event)  # no skipping: apply decides
        user = payload["responded_by_user"] or {}
        chosen = payload["chosen_options"]
        self.log.info("response %s by %s", chosen, user)
        return {
            "auto": False,
            "approved": chosen == [self.APPROVE],
            "chosen": chosen,
            "responder": user.get("name"),
            "responder_id": user.get("id"),
            "responded_at": str(payload["responded_at"]),
        }
