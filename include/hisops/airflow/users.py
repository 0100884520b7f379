"""Roles of an Airflow (FAB) user, readable from a task process.

Airflow 3 forbids task processes its ORM, so FAB's tables are read through the connection
``hisops_airflow_db`` (read access to ab_user, ab_role, ab_user_role); without it, FAB's
security manager is asked (works where the ORM does: CLI, dag.test).
"""

from __future__ import annotations

AIRFLOW_DB_CONN_ID = "hisops_airflow_db"
ROLES_SQL = (
    "SELECT r.name FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id "
    "JOIN ab_role r ON r.id = ur.role_id WHERE u.username = %s AND u.active"
)


class RoleLookupError(RuntimeError):
    """The roles could not be read (then anything that needs a role is refused)."""


def _has_connection(conn_id: str) -> bool:
    from hisops.airflow.connections import get_connection

    try:
        get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001 - AirflowNotFoundException (airflow is a lazy import)
        return False


def _via_connection(username: str) -> set[str]:
    from hisops.airflow.connections import postgres_dsn
    from hisops.targets.postgres import pg_session

    with (
        pg_session(
            postgres_dsn(AIRFLOW_DB_CONN_ID),
            target=AIRFLOW_DB_CONN_ID,
            application_name="hisops-roles",
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(ROLES_SQL, (username,))
        return {row[0] for row in cur.fetchall()}


def roles_of(username: str | None) -> set[str]:
    if not username:
        return set()
    if _has_connection(AIRFLOW_DB_CONN_ID):
        return _via_connection(username)
    try:
        from hisops.airflow.roles import appbuilder

        with appbuilder() as ab:
            user = ab.sm.find_user(username=username)
            return {r.name for r in user.roles} if user is not None and user.is_active else set()
    except Exception as exc:  # noqa: BLE001 - blocked ORM, FAB not configured, …
        raise RoleLookupError(
            f"无法读取用户 {username} 的角色 cannot read the roles of {username!r}: "
            f"{type(exc).__name__}; define the connection {AIRFLOW_DB_CONN_ID!r}"
        ) from exc
