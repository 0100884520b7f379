"""Adapters of the 变更管理 change_request DAG: context → plain arguments → one service call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info

APPROVAL_TASK = "approve"


def _access() -> Any:
    from hisops.change.service import Access

    return Access(dsn_for=runtime.dsn_for, runner_for=runtime.runner_for)


def request(context: Mapping[str, Any]) -> int:
    from hisops.change.service import open_request

    return open_request(
        runtime.catalog(), runtime.inventory(), dict(context["params"]), run_info(context)
    )


def assess(context: Mapping[str, Any], change_id: int) -> dict[str, Any]:
    from hisops.change.service import assess as assess_change

    return assess_change(
        runtime.catalog(), runtime.inventory(), change_id, _access(), run_info(context)
    ).as_dict()


def backup(context: Mapping[str, Any], change_id: int) -> dict[str, Any]:
    from hisops.change.service import backup_gate

    return backup_gate(
        runtime.catalog(), runtime.inventory(), change_id, run_info(context)
    ).as_dict()


def approval_text(change_id: int) -> dict[str, str]:
    from hisops.change.service import approval_text as text

    subject, body = text(runtime.catalog(), change_id)
    return {"subject": subject, "body": body}


def _answer(context: Mapping[str, Any]) -> dict[str, Any]:
    """The HITL answer as plain values: who, their roles, approved?, timed out (no answer)?"""
    payload = (
        context["ti"].xcom_pull(task_ids=APPROVAL_TASK) or {}
    )  # see change_approval.ChangeApproval
    user = payload.get("approver")
    return {
        "approver": user,
        "approver_roles": _roles(user) if user else set(),
        "approved": bool(payload.get("approved")),
        "timed_out": not payload,
    }


def _roles(user: str) -> set[str]:
    from hisops.airflow.users import roles_of

    return roles_of(user)


def check_approval(context: Mapping[str, Any], change_id: int) -> dict[str, Any]:
    from hisops.change.service import record_approval

    return record_approval(
        runtime.catalog(), change_id, run_info(context), **_answer(context)
    ).as_dict()


def apply(context: Mapping[str, Any], change_id: int) -> dict[str, Any]:
    from hisops.change.service import apply_and_verify

    inv = runtime.inventory()
    return apply_and_verify(
        runtime.catalog(), inv, change_id, _access(), run_info(context), runtime.channels()
    ).as_dict()


def outcome(context: Mapping[str, Any], change_id: int | None) -> dict[str, Any]:
    """Always last: settle an unanswered/rejected approval, write the change's page."""
    from hisops.change.service import settle

    if change_id is None:  # the request itself was invalid: nothing was recorded as a change
        return {"change_id": None}
    return settle(
        runtime.catalog(), runtime.inventory(), change_id, run_info(context), **_answer(context)
    )
