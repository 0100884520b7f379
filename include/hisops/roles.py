"""第十三条 系统权限管理 — the hisops role names and their order, in one place.

Import-free (no Airflow): domain services decide with these (e.g. "系统管理员 or higher"), the
Airflow side (``hisops.airflow.access`` / ``hisops.airflow.roles``) maps them onto FAB roles.

The ladder 普通用户 < 运维人员 < 系统管理员 < 超级管理员 orders what a person may change.
审计管理员 (等保 三员分立) stands beside the ladder: it reads the audit trail and evidence and may
change nothing, so it ranks with 普通用户 for every "at least" decision.
"""

from __future__ import annotations

from collections.abc import Iterable

SUPER_ADMIN = "超级管理员"
SYSTEM_ADMIN = "系统管理员"
OPERATOR = "运维人员"
USER = "普通用户"
AUDITOR = "审计管理员"

#: the ladder, lowest first
LADDER: tuple[str, ...] = (USER, OPERATOR, SYSTEM_ADMIN, SUPER_ADMIN)
ROLES: tuple[str, ...] = (SUPER_ADMIN, SYSTEM_ADMIN, OPERATOR, USER, AUDITOR)

ROLE_EN = {
    SUPER_ADMIN: "super administrator",
    SYSTEM_ADMIN: "system administrator",
    OPERATOR: "operator",
    USER: "user",
    AUDITOR: "audit administrator",
}


def level(roles: Iterable[str]) -> int:
    """Highest rung of the ladder among ``roles`` (-1 for none; unknown and AUDITOR rank 0)."""
    best = -1
    for r in roles:
        best = max(best, LADDER.index(r) if r in LADDER else 0)
    return best


def at_least(roles: Iterable[str], floor: str) -> bool:
    """True when one of ``roles`` is ``floor`` or higher on the ladder."""
    return level(roles) >= LADDER.index(floor)


def describe(roles: Iterable[str]) -> str:
    """'系统管理员 (system administrator), …' for messages; 'none' when empty."""
    names = [f"{r} ({ROLE_EN[r]})" if r in ROLE_EN else r for r in sorted(set(roles))]
    return ", ".join(names) or "none"
