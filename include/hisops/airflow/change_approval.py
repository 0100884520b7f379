"""The change_request approval step: Airflow's human-in-the-loop ApprovalOperator that never skips
downstream itself — *审批检查 Check approval* judges the answer (系统管理员 or higher, not the
requester) and records a rejection as such (same pattern as db_maintenance's approval)."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator


class ChangeApproval(ApprovalOperator):
    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        payload = HITLOperator.execute_complete(self, context, event)  # no skipping on Reject
        user = payload["responded_by_user"] or {}
        return {
            "approved": payload["chosen_options"] == [self.APPROVE],
            "approver": user.get("name"),
            "chosen": payload["chosen_options"],
            "responded_at": str(payload["responded_at"]),
        }
