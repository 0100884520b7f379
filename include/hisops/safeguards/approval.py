"""审批 Who may approve a change: 系统管理员 or higher, and never the person who asked for it.

Airflow's human-in-the-loop operators only check that the responder is an assigned user (by user
id); separation of duties and the role floor are decided here, from plain names and role names
(the caller looks the roles up).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hisops.roles import SYSTEM_ADMIN, at_least, describe
from hisops.safeguards.verdict import Verdict

SAFEGUARD = "approval"
#: FAB's built-in Admin role stands above every hisops role
ROLE_ALIASES = {"Admin": "超级管理员"}


@dataclass(frozen=True)
class ApprovalRequest:
    """What was asked (requester) and who answered (approver, their roles, approve or reject)."""

    requester: str | None
    approver: str | None
    approver_roles: frozenset[str]
    approved: bool
    floor: str = SYSTEM_ADMIN


def _normalised(roles: Iterable[str]) -> set[str]:
    return {ROLE_ALIASES.get(r, r) for r in roles}


def check_approval(req: ApprovalRequest) -> Verdict:
    """ok only when approved by a known person ≠ requester whose role is at least ``floor``."""
    details = {
        "requester": req.requester,
        "approver": req.approver,
        "approver_roles": sorted(req.approver_roles),
        "approved": req.approved,
    }
    roles = _normalised(req.approver_roles)
    if not req.approver:
        return Verdict(SAFEGUARD, False, "审批人未知", "the approver is unknown", details)
    if not req.approved:
        return Verdict(
            SAFEGUARD,
            False,
            f"{req.approver} 拒绝了此次维护",
            f"{req.approver} rejected it",
            details,
        )
    if req.requester and req.approver == req.requester:
        return Verdict(
            SAFEGUARD,
            False,
            f"审批人 {req.approver} 就是发起人，不得自批",
            f"the approver {req.approver!r} is the requester (separation of duties)",
            details,
        )
    if not at_least(roles, req.floor):
        return Verdict(
            SAFEGUARD,
            False,
            f"审批人 {req.approver} 的角色（{describe(roles)}）低于 {req.floor}",
            f"approver {req.approver!r} (roles: {describe(roles)}) is below {req.floor}",
            details,
        )
    return Verdict(
        SAFEGUARD,
        True,
        f"{req.approver}（{describe(roles)}）已批准",
        f"approved by {req.approver!r} ({describe(roles)})",
        details,
    )


def auto_approval(kinds: Iterable[str], pre_approved: Iterable[str]) -> Verdict:
    """A scheduled run needs no person when every step kind is pre-approved in the inventory."""
    kinds, allowed = sorted(set(kinds)), set(pre_approved)
    missing = [k for k in kinds if k not in allowed]
    details = {"kinds": kinds, "pre_approved": sorted(allowed), "not_pre_approved": missing}
    if missing:
        return Verdict(
            SAFEGUARD,
            False,
            f"需人工审批：{', '.join(missing)} 未列为预先批准",
            f"needs a person: {', '.join(missing)} not pre-approved in the inventory",
            details,
        )
    return Verdict(
        SAFEGUARD,
        True,
        "所有步骤类型均已预先批准（清单 maintenance.pre_approved）",
        "every step kind is pre-approved (inventory maintenance.pre_approved)",
        details,
    )
