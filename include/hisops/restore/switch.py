"""Switch: make the staged copy live.

- ``new_database``: the staging database is renamed to the new name.
- ``overwrite``: connections to production are refused and terminated, then in ONE transaction
  ``production → <name>_before_restore_<time>`` and ``staging → production``; owner, database
  privileges and connection limit of the old database are carried over. The old database is kept
  (renamed) until ops drop it. Production is never half-restored: a failure rolls the renames back
  and allows connections again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hisops.restore.errors import RestoreRefused
from hisops.restore.names import previous_name
from hisops.restore.request import RestorePlan
from hisops.verify import scratch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwitchOutcome:
    target_db: str
    previous_db: str | None = None  # overwrite: the old production database, renamed
    terminated_sessions: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_db": self.target_db,
            "previous_db": self.previous_db,
            "terminated_sessions": self.terminated_sessions,
            "notes": list(self.notes),
        }


def _database_facts(cur: Any, name: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT pg_get_userbyid(datdba), datconnlimit, datacl IS NOT NULL FROM pg_database "
        "WHERE datname = %s",
        (name,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
        "ELSE quote_ident(pg_get_userbyid(a.grantee)) END, "
        "a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a "
        "WHERE d.datname = %s AND a.grantee <> d.datdba",
        (name,),
    )
    return {"owner": row[0], "connlimit": row[1], "explicit_acl": row[2], "grants": cur.fetchall()}


def _carry_over(cur: Any, target: str, facts: dict[str, Any]) -> None:
    """Owner, connection limit and database privileges of the replaced database onto the restored
    one."""
    from psycopg2 import sql

    ident = sql.Identifier(target)
    cur.execute(
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, sql.Identifier(facts["owner"]))
    )
    cur.execute(
        sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            ident, sql.Literal(facts["connlimit"])
        )
    )
    if not facts["explicit_acl"]:
        return
    cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
    for grantee, privilege, grantable in facts["grants"]:
        option = sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")
        cur.execute(
            sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege), ident, sql.SQL(grantee), option
            )
        )


def _settings_note(cur: Any, name: str) -> tuple[str, ...]:
    cur.execute(
        "SELECT coalesce(pg_get_userbyid(s.setrole), 'ALL'), s.setconfig FROM pg_db_role_setting s "
        "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s",
        (name,),
    )
    rows = cur.fetchall()
    if not rows:
        return ()
    listed = "; ".join(f"role {r}: {', '.join(c)}" for r, c in rows)
    return (
        "旧库的数据库级参数未复制，请按需重设 "
        f"database-level settings of the old database were not copied: {listed}",
    )


def _terminate(cur: Any, names: list[str], wait_seconds: float = 30.0) -> int:
    """End every session on ``names`` and wait until they are gone (RENAME needs the database
    idle)."""
    cur.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
        (names,),
    )
    ended = int(cur.fetchone()[0])
    deadline = time.monotonic() + wait_seconds
    while True:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (names,),
        )
        if cur.fetchone()[0] == 0:
            return ended
        if time.monotonic() > deadline:
            raise scratch.RestoreError(
                f"会话未能结束 sessions on {names} did not end within {wait_seconds:.0f}s"
            )
        time.sleep(0.2)


def switch_new_database(server_dsn: str, plan: RestorePlan) -> SwitchOutcome:
    """new_database: the staging database simply becomes the new database."""
    from psycopg2 import sql

    with scratch.admin_connection(server_dsn) as conn, conn.cursor() as cur:
        if scratch.database_exists(server_dsn, plan.target_db):
            raise RestoreRefused(
                f"数据库 {plan.target_db} 已存在", f"database {plan.target_db!r} already exists"
            )
        terminated = _terminate(cur, [plan.staging_db])
        cur.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(plan.staging_db), sql.Identifier(plan.target_db)
            )
        )
    return SwitchOutcome(plan.target_db, None, terminated)


def switch_overwrite(
    server_dsn: str, plan: RestorePlan, now: datetime | None = None
) -> SwitchOutcome:
    """overwrite: production → <name>_before_restore_<time>, staging → production, in one
    transaction."""
    from psycopg2 import sql

    prod, staging = plan.production_db, plan.staging_db
    old = previous_name(prod, now)
    with scratch.admin_connection(server_dsn) as conn, conn.cursor() as cur:
        facts = _database_facts(cur, prod)
        if facts is None:
            raise scratch.RestoreError(f"生产库不存在 production database {prod!r} does not exist")
        notes = _settings_note(cur, prod)
        cur.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(prod))
        )
        try:
            terminated = _terminate(cur, [prod, staging])
            conn.autocommit = False
            cur.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(prod), sql.Identifier(old)
                )
            )
            cur.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(staging), sql.Identifier(prod)
                )
            )
            _carry_over(cur, prod, facts)
            conn.commit()
        except BaseException:
            conn.rollback()
            conn.autocommit = True
            cur.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                    sql.Identifier(prod)
                )
            )
            raise
        conn.autocommit = True
        cur.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(old))
        )
    log.info(
        "已切换 switched: %s → %s, restored backup #%s is now %s (%d sessions ended)",
        prod,
        old,
        plan.backup_id,
        prod,
        terminated,
    )
    return SwitchOutcome(prod, old, terminated, notes)
