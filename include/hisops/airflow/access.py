"""第十三条 — the four permission levels and per-DAG ``access_control``.

Pure constants: DAG files import this at parse time, so it must stay import-cheap.

| level | see | trigger inspection/backup/verification/cleanup | trigger restore/change/maintenance | connections, variables, pools | users, roles |
| 超级管理员 | ✓ | ✓ | ✓ | ✓ | ✓ |
| 系统管理员 | ✓ | ✓ | ✓ | ✓ | ✗ |
| 运维人员   | ✓ | ✓ (per DAG) | ✗ | ✗ | ✗ |
| 普通用户   | ✓ read only | ✗ | ✗ | ✗ | ✗ |
"""

from __future__ import annotations

SUPER_ADMIN = "超级管理员"
SYSTEM_ADMIN = "系统管理员"
OPERATOR = "运维人员"
USER = "普通用户"
ROLES: tuple[str, ...] = (SUPER_ADMIN, SYSTEM_ADMIN, OPERATOR, USER)

# What a role may do on one DAG it is granted: see it, trigger it, clear its tasks.
_RUN_DAG = {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}


def operator_dag() -> dict[str, dict[str, set[str]]]:
    """access_control for routine DAGs (inspection, backup, verification, cleanup, self-check)."""
    return {OPERATOR: {k: set(v) for k, v in _RUN_DAG.items()},
            SYSTEM_ADMIN: {k: set(v) for k, v in _RUN_DAG.items()}}


def admin_dag() -> dict[str, dict[str, set[str]]]:
    """access_control for DAGs that change production (restore, change, maintenance)."""
    return {SYSTEM_ADMIN: {k: set(v) for k, v in _RUN_DAG.items()}}
