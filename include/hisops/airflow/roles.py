"""Create / update the five hisops roles and users in Airflow's FAB auth manager.

Idempotent: run it after every deployment (`hisops roles sync`). Global permissions come
from FAB's own permission sets; per-DAG trigger rights come from each DAG's
``access_control`` (see ``hisops.airflow.access``) and are synced by the dag-processor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hisops.airflow.access import AUDIT_RESOURCE, CENTRE_RESOURCE
from hisops.roles import AUDITOR, OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN, USER

_DAG_PREFIXES = ("DAG:", "DAG Run:")

DESCRIPTIONS = {
    SUPER_ADMIN: "超级管理员 super administrator: everything, including users and roles",
    SYSTEM_ADMIN: "系统管理员 system administrator: all DAGs incl. restore/change/maintenance; "
    "connections, variables, pools; reads the audit trail",
    OPERATOR: "运维人员 operator: see everything; trigger, clear and re-run inspection, backup, "
    "verification, cleanup",
    USER: "普通用户 user: read only",
    AUDITOR: "审计管理员 audit administrator: the audit trail, reports and evidence, nothing else",
}

# Everyone reaches the O&M centre: the UI lists plugin pages only with "Plugins" read.
_EVERYONE = {
    ("can_read", "Plugins"),
    ("menu_access", "Plugins"),
    ("can_read", CENTRE_RESOURCE),
    ("can_read", "Website"),
    ("can_read", "My Profile"),
    ("can_edit", "My Profile"),
    ("can_read", "My Password"),
    ("can_edit", "My Password"),
}
_AUDIT = {("can_read", AUDIT_RESOURCE)}
# Clearing / re-running / marking a task instance: FAB checks the global "Task Instances" AND
# "DAG Runs" edit, and then edit on that DAG — which only access_control's operator_dag()
# grants an operator. So these globals give nothing on restore_database or admin DAGs.
_OPERATOR_TASKS = {
    ("can_create", "Task Instances"),
    ("can_edit", "Task Instances"),
    ("can_edit", "DAG Runs"),
}


@contextmanager
def appbuilder() -> Iterator[Any]:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as ab:
        yield ab


def _is_dag_specific(resource: str) -> bool:
    return resource.startswith(_DAG_PREFIXES)


def desired_permissions(sm: Any) -> dict[str, set[tuple[str, str]]]:
    """Global (non-DAG-specific) permissions per role, built from FAB's own sets."""
    viewer = set(sm.VIEWER_PERMISSIONS)
    admin = sm.find_role("Admin")
    everything = {
        (p.action.name, p.resource.name)
        for p in admin.permissions
        if not _is_dag_specific(p.resource.name)
    }
    airflow_audit_log = {("can_read", "Audit Logs"), ("menu_access", "Audit Logs")}
    return {
        USER: viewer | _EVERYONE,
        OPERATOR: viewer | _EVERYONE | _OPERATOR_TASKS,
        SYSTEM_ADMIN: (
            viewer
            | set(sm.USER_PERMISSIONS)
            | set(sm.OP_PERMISSIONS)
            | airflow_audit_log
            | _EVERYONE
            | _AUDIT
        ),
        SUPER_ADMIN: everything | _EVERYONE | _AUDIT,
        AUDITOR: _EVERYONE | _AUDIT,
    }


def _sync_role(sm: Any, name: str, wanted: set[tuple[str, str]]) -> tuple[int, int]:
    role = sm.find_role(name) or sm.add_role(name)
    have = {
        (p.action.name, p.resource.name): p
        for p in role.permissions
        if not _is_dag_specific(p.resource.name)
    }
    added = removed = 0
    for action, resource in sorted(wanted - have.keys()):
        perm = sm.get_permission(action, resource) or sm.create_permission(action, resource)
        sm.add_permission_to_role(role, perm)
        added += 1
    for key in sorted(have.keys() - wanted):
        sm.remove_permission_from_role(role, have[key])
        removed += 1
    return added, removed


def sync_roles() -> list[str]:
    """Ensure FAB's base permissions exist, then make our five roles exactly as designed."""
    lines = []
    with appbuilder() as ab:
        sm = ab.sm
        sm.sync_roles()  # creates FAB's resources/permissions and the Admin role holding all
        for name, wanted in desired_permissions(sm).items():
            added, removed = _sync_role(sm, name, wanted)
            lines.append(f"{name}: {len(wanted)} permissions (+{added} −{removed})")
    return lines


def ensure_user(
    username: str,
    role: str,
    password: str,
    *,
    email: str | None = None,
    first_name: str = "",
    last_name: str = "",
) -> str:
    """Create the user or bring its role and password up to date; returns 'created' or 'updated'."""
    with appbuilder() as ab:
        sm = ab.sm
        role_obj = sm.find_role(role)
        if role_obj is None:
            raise ValueError(f"role {role!r} does not exist; run `hisops roles sync` first")
        user = sm.find_user(username=username)
        if user is None:
            ok = sm.add_user(
                username,
                first_name or username,
                last_name or role,
                email or f"{username}@hisops.invalid",
                role_obj,
                password,
            )
            if not ok:
                raise RuntimeError(f"could not create user {username}")
            return "created"
        user.roles = [role_obj]
        sm.update_user(user)
        sm.reset_password(user.id, password)
        return "updated"
