"""Database changes: SQL scripts (sqitch-style deploy/verify/revert) and PostgreSQL configuration.

Every function takes the database DSN and returns a :class:`StepResult`; nothing raises for a
failed step (an unreachable server is a failed step too). Apply returns what revert needs in
``details["before"]`` so that revert can run in another task/process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hisops.change.results import StepResult, failed, first_line, passed
from hisops.targets.errors import TargetUnreachable

if TYPE_CHECKING:
    from hisops.change.request import ChangeRequest

LOCK_TIMEOUT = "3s"  # a change never queues behind the hospital's sessions for long
STATEMENT_TIMEOUT_MS = 10 * 60 * 1000
AUTO_CONF = "%postgresql.auto.conf"
NEEDS_RESTART = "setting could not be applied"  # pg_file_settings.error of a postmaster parameter
BOOL_VALUES = {"on", "off", "true", "false", "yes", "no", "1", "0"}


@contextmanager
def _session(dsn: str, target: str) -> Iterator[Any]:
    from hisops.targets.postgres import pg_session

    with pg_session(
        dsn,
        target=target,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        read_only=False,
        application_name="hisops-change",
    ) as conn:
        yield conn


def _run_in_transaction(conn: Any, sql: str, commit: bool) -> None:
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cur.execute(sql)
        conn.commit() if commit else conn.rollback()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True


def server_facts(conn: Any) -> dict[str, Any]:
    """Versions, extensions, size and replication state: the compatibility facts of a database."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
            "pg_is_in_recovery(), pg_database_size(current_database()), "
            "(SELECT count(*) FROM pg_stat_replication), "
            "(SELECT coalesce(json_object_agg(extname, extversion), '{}') FROM pg_extension)"
        )
        version, num, standby, size, replicas, extensions = cur.fetchone()
    return {
        "server_version": version,
        "server_version_num": num,
        "in_recovery": standby,
        "database_size_bytes": size,
        "replicas": replicas,
        "extensions": extensions,
    }


def _unreachable(step: str, exc: TargetUnreachable) -> StepResult:
    return failed(step, f"无法连接数据库：{exc.reason}", f"database unreachable: {exc.reason}")


# --------------------------------------------------------------------------- SQL change


def assess_sql(dsn: str, request: ChangeRequest) -> StepResult:
    """Facts, then a dry run: deploy + verify in one transaction that
    is rolled back (lock_timeout)."""
    import psycopg2

    assert request.scripts is not None
    try:
        with _session(dsn, request.database_id or "database") as conn:
            facts = server_facts(conn)
            if facts["in_recovery"]:
                return failed(
                    "assessment",
                    "目标是只读备库，不能变更",
                    "the target is a read-only standby",
                    **facts,
                )
            try:
                _run_in_transaction(
                    conn, request.scripts.deploy + "\n;\n" + request.scripts.verify, commit=False
                )
            except psycopg2.Error as exc:
                return failed(
                    "assessment",
                    f"试运行失败（已回滚）：{first_line(exc)}",
                    f"dry run failed (rolled back): {first_line(exc)}",
                    **facts,
                    dry_run="failed",
                )
    except TargetUnreachable as exc:
        return _unreachable("assessment", exc)
    return passed(
        "assessment",
        "试运行通过（部署与验证脚本已在回滚的事务中执行）",
        "dry run passed (deploy and verify ran in a rolled-back transaction)",
        **facts,
        dry_run="ok",
    )


def _script(
    step: str, dsn: str, request: ChangeRequest, sql: str, commit: bool, zh: str, en: str
) -> StepResult:
    import psycopg2

    try:
        with _session(dsn, request.database_id or "database") as conn:
            _run_in_transaction(conn, sql, commit=commit)
    except TargetUnreachable as exc:
        return _unreachable(step, exc)
    except psycopg2.Error as exc:
        return failed(step, f"{zh}失败：{first_line(exc)}", f"{en} failed: {first_line(exc)}")
    return passed(step, f"{zh}成功", f"{en} succeeded")


def apply_sql(dsn: str, request: ChangeRequest) -> StepResult:
    assert request.scripts is not None
    return _script("apply", dsn, request, request.scripts.deploy, True, "部署脚本", "deploy script")


def verify_sql(dsn: str, request: ChangeRequest, step: str = "verify") -> StepResult:
    """The verify script in a transaction that is rolled back: it must not error. After a revert the
    change is meant to be gone, so "verify again" is the database's health (the caller's checks)."""
    assert request.scripts is not None
    if step == "verify_after_revert":
        return passed(step, "已回退；验证数据库状态", "reverted; checking the database's health")
    return _script(step, dsn, request, request.scripts.verify, False, "验证脚本", "verify script")


def revert_sql(dsn: str, request: ChangeRequest, before: dict[str, Any]) -> StepResult:
    assert request.scripts is not None
    return _script(
        "revert", dsn, request, request.scripts.revert, True, "回退脚本", "revert script"
    )


# ------------------------------------------------------------------------- PostgreSQL configuration


def _setting(cur: Any, name: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT name, setting, unit, context, vartype, enumvals, pending_restart, source "
        "FROM pg_settings WHERE name = %s",
        (name,),
    )
    row = cur.fetchone()
    keys = (
        "name",
        "setting",
        "unit",
        "context",
        "vartype",
        "enumvals",
        "pending_restart",
        "source",
    )
    return None if row is None else dict(zip(keys, row, strict=True))


def _auto_conf_value(cur: Any, name: str) -> str | None:
    cur.execute(
        "SELECT setting FROM pg_file_settings WHERE name = %s AND sourcefile LIKE %s "
        "ORDER BY seqno DESC LIMIT 1",
        (name, AUTO_CONF),
    )
    row = cur.fetchone()
    return None if row is None else row[0]


def _value_problem(setting: dict[str, Any], value: str) -> str | None:
    if setting["context"] == "internal":
        return f"{setting['name']} is read-only (internal)"
    if setting["vartype"] == "bool" and value.lower() not in BOOL_VALUES:
        return f"{value!r} is not a boolean"
    if setting["vartype"] == "enum" and value not in (setting["enumvals"] or []):
        return f"{value!r} is not one of {setting['enumvals']}"
    return None


def assess_pg_config(dsn: str, request: ChangeRequest) -> StepResult:
    """The parameter exists, the value fits its type, a restart is allowed when it needs one."""
    name, value = request.parameter or "", request.value or ""
    try:
        with _session(dsn, request.database_id or "database") as conn, conn.cursor() as cur:
            facts = server_facts(conn)
            setting = _setting(cur, name)
    except TargetUnreachable as exc:
        return _unreachable("assessment", exc)
    if setting is None:
        return failed(
            "assessment", f"没有参数 {name}", f"no configuration parameter {name!r}", **facts
        )
    problem = _value_problem(setting, value)
    facts["current"] = {k: setting[k] for k in ("setting", "unit", "context", "source")}
    if problem:
        return failed(
            "assessment", f"参数值不可用：{problem}", f"value not usable: {problem}", **facts
        )
    if setting["context"] == "postmaster":
        facts["needs_restart"] = True
        facts["restart_allowed"] = request.restart_allowed
        note_zh = (
            "；需重启生效，将在维护窗口内计划重启"
            if request.restart_allowed
            else "；需重启生效，申请未允许重启：写入后记为待重启"
        )
        note_en = (
            "; takes effect at a restart, planned inside the maintenance window"
            if request.restart_allowed
            else "; takes effect at a restart the request does not allow: recorded pending restart"
        )
    else:
        note_zh = note_en = ""
    return passed(
        "assessment",
        f"{name}：当前 {setting['setting']}{setting['unit'] or ''}，拟改为 {value}{note_zh}",
        f"{name}: now {setting['setting']}{setting['unit'] or ''}, to become {value}{note_en}",
        **facts,
    )


def _file_errors(cur: Any) -> list[dict[str, Any]]:
    """Lines of the configuration files PostgreSQL would not apply on reload. pg_file_settings says
    "setting could not be applied" both for a bad value and for a postmaster parameter that only
    waits for a restart; the latter is not an error here (ALTER SYSTEM validated our own value)."""
    cur.execute(
        "SELECT f.sourcefile, f.sourceline, f.name, f.setting, f.error FROM pg_file_settings f "
        "LEFT JOIN pg_settings s ON s.name = f.name "
        "WHERE f.error IS NOT NULL AND NOT (f.error = %s AND s.context = 'postmaster')",
        (NEEDS_RESTART,),
    )
    keys = ("sourcefile", "sourceline", "name", "setting", "error")
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


def _alter_system(cur: Any, name: str, value: str | None) -> None:
    from psycopg2 import sql

    if value is None:
        cur.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
    else:
        cur.execute(
            sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
        )


def apply_pg_config(dsn: str, request: ChangeRequest) -> StepResult:
    """ALTER SYSTEM → pg_file_settings has no error → pg_reload_conf(); else the file is put back
    and nothing is reloaded (nothing applied)."""
    import psycopg2

    name, value = request.parameter or "", request.value or ""
    try:
        with _session(dsn, request.database_id or "database") as conn, conn.cursor() as cur:
            before = {
                "auto_conf": _auto_conf_value(cur, name),
                "setting": (_setting(cur, name) or {}).get("setting"),
            }
            try:
                _alter_system(cur, name, value)
            except psycopg2.Error as exc:
                return failed(
                    "apply",
                    f"PostgreSQL 拒绝该值，未做任何更改：{first_line(exc)}",
                    f"PostgreSQL rejected the value, nothing changed: {first_line(exc)}",
                    before=before,
                )
            errors = _file_errors(cur)
            if errors:
                _alter_system(cur, name, before["auto_conf"])
                return failed(
                    "apply",
                    "配置文件检查（pg_file_settings）发现错误，已恢复原配置，未重新加载",
                    "pg_file_settings reports errors: the file was put back and nothing reloaded",
                    before=before,
                    file_errors=errors,
                    reloaded=False,
                )
            cur.execute("SELECT pg_reload_conf()")
    except TargetUnreachable as exc:
        return _unreachable("apply", exc)
    return passed(
        "apply",
        f"已写入 {name} = {value} 并重新加载配置",
        f"set {name} = {value} and reloaded",
        before=before,
        reloaded=True,
    )


def verify_pg_config(dsn: str, request: ChangeRequest, step: str = "verify") -> StepResult:
    """The new value is in effect, or written and pending a restart (``pending_restart``)."""
    name = request.parameter or ""
    try:
        with _session(dsn, request.database_id or "database") as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT setting, applied, error FROM pg_file_settings WHERE name = %s "
                "AND sourcefile LIKE %s ORDER BY seqno DESC LIMIT 1",
                (name, AUTO_CONF),
            )
            row = cur.fetchone()
            setting = _setting(cur, name) or {}
    except TargetUnreachable as exc:
        return _unreachable(step, exc)
    details = {
        "pg_settings": {
            k: setting.get(k) for k in ("setting", "unit", "source", "pending_restart")
        },
        "auto_conf": None
        if row is None
        else {"setting": row[0], "applied": row[1], "error": row[2]},
    }
    if step == "verify_after_revert":
        return passed(
            step,
            f"{name} 已恢复为 {setting.get('setting')}",
            f"{name} is back to {setting.get('setting')}",
            **details,
        )
    if row is None or row[0] != request.value:
        return failed(
            step, f"{name} 未写入配置文件", f"{name} is not in postgresql.auto.conf", **details
        )
    if setting.get("pending_restart"):
        return passed(
            step,
            f"{name} 已写入配置文件，待重启后生效",
            f"{name} is set in postgresql.auto.conf; it takes effect at the next restart",
            pending_restart=True,
            **details,
        )
    if not row[1]:
        return failed(step, f"{name} 未生效：{row[2]}", f"{name} not applied: {row[2]}", **details)
    return passed(
        step,
        f"{name} 已生效：{setting.get('setting')}{setting.get('unit') or ''}",
        f"{name} in effect: {setting.get('setting')}{setting.get('unit') or ''}",
        **details,
    )


def revert_pg_config(dsn: str, request: ChangeRequest, before: dict[str, Any]) -> StepResult:
    """Put the previous postgresql.auto.conf entry back (or remove ours) and reload."""
    import psycopg2

    name = request.parameter or ""
    try:
        with _session(dsn, request.database_id or "database") as conn, conn.cursor() as cur:
            _alter_system(cur, name, before.get("auto_conf"))
            cur.execute("SELECT pg_reload_conf()")
    except TargetUnreachable as exc:
        return _unreachable("revert", exc)
    except psycopg2.Error as exc:
        return failed(
            "revert",
            f"恢复原配置失败：{first_line(exc)}",
            f"putting the configuration back failed: {first_line(exc)}",
        )
    return passed("revert", f"{name} 已恢复原配置并重新加载", f"{name} put back and reloaded")
