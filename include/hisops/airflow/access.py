"""第十三条 — the five roles and per-DAG ``access_control``.

Pure constants: DAG files import this at parse time, so it must stay import-cheap. Role names
come from :mod:`hisops.roles` (the one home of the names).

Columns: (1) see DAGs, (2) trigger, clear/re-run, pause routine DAGs, (3) restore, change,
maintenance, (4) connections, variables, pools, (5) users, roles, (6) audit trail.

| level      | 1 | 2 | 3 | 4 | 5 | 6 |
| 超级管理员 | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
| 系统管理员 | ✓ | ✓ | ✓ | ✓ | ✗ | ✓ |
| 运维人员   | ✓ | ✓ (per DAG) | ✗ | ✗ | ✗ | ✗ |
| 普通用户   | ✓ read only | ✗ | ✗ | ✗ | ✗ | ✗ |
| 审计管理员 | ✗ (O&M centre: reports, evidence) | ✗ | ✗ | ✗ | ✗ | ✓ |
"""

from __future__ import annotations

from hisops.roles import AUDITOR, OPERATOR, ROLES, SUPER_ADMIN, SYSTEM_ADMIN, USER

__all__ = [
    "AUDITOR",
    "OPERATOR",
    "ROLES",
    "SUPER_ADMIN",
    "SYSTEM_ADMIN",
    "USER",
    "admin_dag",
    "operator_dag",
]

# What a role may do on one DAG it is granted: see it, trigger it, and (with the global
# "Task Instances"/"DAG Runs" edit of hisops.airflow.roles) clear, re-run and mark its tasks.
# FAB ties pause/unpause to the same DAG edit; the audit trail records every one.
_RUN_DAG = {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}


def operator_dag() -> dict[str, dict[str, set[str]]]:
    """access_control for routine DAGs (inspection, backup, verification, cleanup, self-check)."""
    return {
        OPERATOR: {k: set(v) for k, v in _RUN_DAG.items()},
        SYSTEM_ADMIN: {k: set(v) for k, v in _RUN_DAG.items()},
    }


def admin_dag() -> dict[str, dict[str, set[str]]]:
    """access_control for DAGs that change production (restore, change, maintenance)."""
    return {SYSTEM_ADMIN: {k: set(v) for k, v in _RUN_DAG.items()}}


# --- hisops' own FAB resources (custom views), checked by the O&M centre -------------------
#: the 运维中心 page, its reports and restore-drill evidence (every role)
CENTRE_RESOURCE = "hisops 运维中心 O&M centre"
#: the audit trail (审计管理员, 系统管理员, 超级管理员)
AUDIT_RESOURCE = "hisops 审计记录 Audit trail"
