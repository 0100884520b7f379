"""数据恢复 Restore on demand (第十一条: restore promptly when data is damaged or lost).

Two targets:

- ``new_database`` (default): the backup is restored next to production under a new name; nothing
  existing is touched. Use it to recover rows, or to look before overwriting.
- ``overwrite``: production is replaced. Refused unless the confirmation field holds the database id
  *and* the triggering user has 系统管理员 or 超级管理员. Production is never half-restored:

  1. ``stage``  — checksums (and decryption), then pg_restore into a staging database
     ``hisops_restore_<db>_<backup>_<time>_<rand>`` on the same server;
  2. ``safety backup`` — a normal hisops backup of what is about to be replaced, registered in the
     catalog (taken last, right before the switch, so it holds the latest state);
  3. ``switch`` — connections to production are refused and terminated, then in ONE transaction
     ``production → <name>_before_restore_<time>`` and ``staging → production``; owner, privileges and
     connection limit of the old database are carried over. The old database is kept (renamed) until
     ops drop it.

For ``new_database`` the staging database is simply renamed to the new name. A failed run leaves at
most a staging database, which the DAG's teardown drops (guarded: only ``hisops_restore_*`` names).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hisops.roles import SUPER_ADMIN, SYSTEM_ADMIN  # the one home of the role names
from hisops.verify import scratch

log = logging.getLogger(__name__)

Target = Literal["new_database", "overwrite"]
TARGETS: tuple[Target, ...] = ("new_database", "overwrite")
LATEST_VERIFIED = "latest_verified"
#: roles allowed to overwrite production: hisops roles only (FAB's built-in "Admin" is not one)
OVERWRITE_ROLES = frozenset({SUPER_ADMIN, SYSTEM_ADMIN})
NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED_PREFIXES = (scratch.SCRATCH_PREFIX, scratch.STAGING_PREFIX, "pg_", "template")


class RestoreRefused(Exception):
    """The request is not allowed or not valid; production was not touched."""

    def __init__(self, reason_zh: str, reason_en: str) -> None:
        super().__init__(f"拒绝恢复 restore refused: {reason_zh} ({reason_en})")
        self.reason_zh, self.reason_en = reason_zh, reason_en


@dataclass(frozen=True)
class RestoreRequest:
    """What the trigger form asked for, plus who asked (from the DAG run, not from the form)."""

    database_id: str
    backup: int | str  # a backup id or "latest_verified"
    target: Target = "new_database"
    new_database_name: str | None = None
    confirm: str | None = None
    user: str | None = None
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RestorePlan:
    """An authorized restore: everything later steps need (small, JSON-able for XCom)."""

    database_id: str
    backup_id: int
    backup_dir: str
    target: Target
    target_db: str  # the database that will hold the restored data at the end
    staging_db: str
    production_db: str  # the inventory database's current name (its connection's dbname)
    user: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


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


# --- deciding --------------------------------------------------------------------------------------


def parse_backup_param(value: Any) -> int | str:
    """The form's backup field: a positive integer (also as text) or "latest_verified"."""
    if isinstance(value, str) and value.strip() == LATEST_VERIFIED:
        return LATEST_VERIFIED
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, bool):
        raise RestoreRefused(
            f"备份编号无效：{value!r}", f"backup must be a positive id or {LATEST_VERIFIED!r}"
        )
    return number


def check_confirmation(req: RestoreRequest) -> None:
    """A known target; for overwrite, the database id typed into 'confirm' exactly as it is spelled
    (a trailing space or another case is refused: the person must type the very name)."""
    if req.target not in TARGETS:
        raise RestoreRefused(f"未知恢复目标 {req.target!r}", f"unknown target {req.target!r}")
    if (
        req.target == "overwrite" and (req.confirm or "") != req.database_id
    ):  # exact: no strip, no folding
        raise RestoreRefused(
            f"覆盖恢复需要在确认栏输入数据库标识 {req.database_id}",
            f"overwrite needs the database id {req.database_id!r} typed into 'confirm'",
        )


def authorize(req: RestoreRequest) -> None:
    """Refuse what must not run: overwrite without the typed confirmation or by a role below 系统管理员."""
    check_confirmation(req)
    if req.target != "overwrite":
        return
    if not req.user:
        raise RestoreRefused("无法确定触发用户", "the triggering user is unknown")
    if not (set(req.roles) & OVERWRITE_ROLES):
        have = ", ".join(sorted(req.roles)) or "无 none"
        raise RestoreRefused(
            f"用户 {req.user} 的角色（{have}）低于系统管理员",
            f"user {req.user!r} (roles: {have}) is below 系统管理员 (system administrator)",
        )


def choose_backup(records: Iterable[Any], backup: int | str, database_id: str) -> Any:
    """The catalog record to restore from: the given id (completed or verified, files present) or the
    newest verified one. ``records``: that database's backups, newest first."""
    records = list(records)
    if backup == LATEST_VERIFIED:
        found = next((r for r in records if r.state == "verified" and r.deleted_at is None), None)
        if found is None:
            raise RestoreRefused(
                f"{database_id} 没有已校验的备份", f"{database_id} has no verified backup"
            )
        return found
    found = next((r for r in records if r.id == backup), None)
    if found is None:
        raise RestoreRefused(
            f"备份 #{backup} 不属于 {database_id} 或不存在",
            f"backup #{backup} does not exist or is not a backup of {database_id}",
        )
    if (
        found.state not in ("completed", "verified")
        or found.deleted_at is not None
        or not found.path
    ):
        raise RestoreRefused(
            f"备份 #{backup} 状态为 {found.state}，不能用于恢复",
            f"backup #{backup} is {found.state}{' and deleted' if found.deleted_at else ''}; "
            "only completed or verified backups with files can be restored",
        )
    return found


def default_new_name(database_id: str, backup_id: int, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M")
    base = re.sub(r"[^a-z0-9_]", "_", database_id.lower())[:30]
    return f"{base}_restored_{backup_id}_{stamp}"


def check_new_name(name: str, exists: bool) -> None:
    if not NAME_RE.fullmatch(name) or name.startswith(RESERVED_PREFIXES):
        raise RestoreRefused(
            f"新数据库名无效：{name!r}",
            f"new database name {name!r} must be lowercase letters, digits and _ (≤ 63), "
            "starting with a letter or _, not a reserved prefix",
        )
    if exists:
        raise RestoreRefused(f"数据库 {name} 已存在", f"database {name!r} already exists")


def previous_name(production_db: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"{production_db[:40]}_before_restore_{stamp}"


# --- staging ---------------------------------------------------------------------------------------


def stage(
    plan: RestorePlan,
    server_dsn: str,
    *,
    jobs: int = 2,
    pg_bindir: str | None = None,
    encryption_key: str | None = None,
) -> float:
    """Checksums, then pg_restore into the staging database; returns the pg_restore seconds (the RTO part)."""
    from hisops.backup.manifest import load_manifest, verify_files

    backup_dir = Path(plan.backup_dir)
    manifest = load_manifest(backup_dir)
    problems = verify_files(backup_dir, manifest, workers=max(2, jobs))
    if problems:
        raise scratch.RestoreError(
            "备份文件校验失败 backup files do not match the manifest: " + "; ".join(problems)
        )
    tool = scratch.find_pg_restore(pg_bindir, manifest.tool.pg_dump_version)
    scratch.assert_droppable(plan.staging_db, scratch.STAGING_RE)
    scratch.create_database(server_dsn, plan.staging_db)
    dump = backup_dir / "dump"
    if manifest.encryption is not None:
        return _restore_encrypted(plan, server_dsn, dump, tool, jobs, encryption_key)
    run = scratch.run_pg_restore(
        dump, scratch.dsn_with(server_dsn, plan.staging_db), jobs=jobs, tool=tool, keep_owners=True
    )
    return run.seconds


def _restore_encrypted(
    plan: RestorePlan, server_dsn: str, dump: Path, tool: Path, jobs: int, key: str | None
) -> float:
    import shutil
    import tempfile

    from hisops.backup.crypto import decrypt_tree

    if not key:
        raise scratch.RestoreError(
            "备份已加密但没有密钥 backup is encrypted but no key is configured"
        )
    work = Path(tempfile.mkdtemp(prefix=".hisops-restore-", dir=Path(plan.backup_dir).parent))
    try:
        start = time.monotonic()
        decrypt_tree(dump, work / "dump", key)
        decrypt_seconds = time.monotonic() - start
        run = scratch.run_pg_restore(
            work / "dump",
            scratch.dsn_with(server_dsn, plan.staging_db),
            jobs=jobs,
            tool=tool,
            keep_owners=True,
        )
        return round(run.seconds + decrypt_seconds, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def drop_staging(server_dsn: str, staging_db: str) -> bool:
    return scratch.drop_database(server_dsn, staging_db, scratch.STAGING_RE)


# --- switching -------------------------------------------------------------------------------------


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
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, "
        "a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a "
        "WHERE d.datname = %s AND a.grantee <> d.datdba",
        (name,),
    )
    return {"owner": row[0], "connlimit": row[1], "explicit_acl": row[2], "grants": cur.fetchall()}


def _carry_over(cur: Any, target: str, facts: dict[str, Any]) -> None:
    """Owner, connection limit and database privileges of the replaced database onto the restored one."""
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
        f"旧库的数据库级参数未复制，请按需重设 database-level settings of the old database were not copied: {listed}",
    )


def _terminate(cur: Any, names: list[str], wait_seconds: float = 30.0) -> int:
    """End every session on ``names`` and wait until they are gone (RENAME needs the database idle)."""
    cur.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
        (names,),
    )
    ended = int(cur.fetchone()[0])
    deadline = time.monotonic() + wait_seconds
    while True:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
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
    """overwrite: production → <name>_before_restore_<time>, staging → production, in one transaction."""
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


def table_checksums(dsn: str) -> dict[str, str]:
    """md5 of every user table's rows in primary-key order: compare production before/after (tests, ops)."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=15, application_name="hisops-restore")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1"
            )
            tables = [r[0] for r in cur.fetchall()]
            out = {}
            for table in tables:
                cur.execute(
                    f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
                )
                out[table] = cur.fetchone()[0]
            return out
    finally:
        conn.close()
