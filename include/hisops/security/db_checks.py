"""Per database: roles, grants, authentication, encryption, logging, pgaudit, checksums.

``collect`` reads everything in ONE read-only session (statement_timeout 5 s) into a plain
snapshot; ``evaluate`` turns a snapshot into findings (pure, testable). Role attributes and
grants are also compared with the baseline in the catalog (``hisops.security.baseline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hisops.catalog.records import FindingRecord
from hisops.security.findings import finding

ROLE_ATTRS = ("rolsuper", "rolcreaterole", "rolreplication", "rolbypassrls")
WEAK_HBA = {"trust": "critical", "password": "critical", "md5": "warn"}
SETTINGS = (
    "password_encryption",
    "ssl",
    "ssl_min_protocol_version",
    "log_connections",
    "log_disconnections",
    "log_line_prefix",
    "shared_preload_libraries",
    "data_checksums",
)
#: what log_line_prefix must carry for an audit record (等保: time,
#: user, source): any of the escapes
PREFIX_NEEDS = {
    "user 用户 %u": ("%u",),
    "address 来源地址 %h": ("%h", "%r"),
    "time 时间 %m": ("%m", "%t", "%n"),
}

SQL_ROLES = (
    "SELECT rolname, " + ", ".join(ROLE_ATTRS) + ", rolcanlogin FROM pg_roles "
    "WHERE rolname !~ '^pg_' ORDER BY rolname"
)
SQL_GRANTS = (
    "SELECT grantee, table_schema, privilege_type, count(*) FROM "
    "information_schema.role_table_grants WHERE table_schema NOT IN ('pg_catalog', "
    "'information_schema') AND grantee <> (SELECT pg_get_userbyid(relowner) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = table_schema "
    "AND c.relname = table_name) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
SQL_PUBLIC = (
    "SELECT table_schema || '.' || table_name, string_agg(privilege_type, ',' "
    "ORDER BY privilege_type) FROM information_schema.role_table_grants WHERE grantee = 'PUBLIC' "
    "AND table_schema NOT IN ('pg_catalog', 'information_schema') GROUP BY 1 ORDER BY 1 LIMIT 200"
)
SQL_PUBLIC_SCHEMA = (
    "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
    "AND nspname <> 'information_schema' AND has_schema_privilege('public', oid, 'CREATE')"
)
SQL_DEFINER = (
    "SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || "
    "')' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prosecdef "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 "
    "FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search\\_path=%') ORDER BY 1 "
    "LIMIT 200"
)
SQL_HBA = (
    "SELECT line_number, type, database, user_name, address, auth_method, error "
    "FROM pg_hba_file_rules ORDER BY line_number"
)


@dataclass
class DbSnapshot:
    database_id: str
    roles: dict[str, dict[str, bool]] = field(default_factory=dict)
    grants: dict[str, int] = field(default_factory=dict)
    public_grants: list[str] = field(default_factory=list)
    public_create_schemas: list[str] = field(default_factory=list)
    definer_without_path: list[str] = field(default_factory=list)
    hba: list[dict[str, Any]] | None = None
    hba_error: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    pgaudit_log: str | None = None
    pgaudit_installed: bool = False
    session_user: str = ""
    session_is_superuser: bool = False


def _rows(cur: Any, sql: str) -> list[tuple]:
    cur.execute(sql)
    return cur.fetchall()


def collect(conn: Any, database_id: str) -> DbSnapshot:
    """Everything the checks need, from one read-only session (read-only catalog queries)."""
    snap = DbSnapshot(database_id)
    with conn.cursor() as cur:
        for name, *attrs, login in _rows(cur, SQL_ROLES):
            snap.roles[name] = dict(zip((*ROLE_ATTRS, "rolcanlogin"), (*attrs, login), strict=True))
        snap.grants = {f"{g}:{s}:{p}": n for g, s, p, n in _rows(cur, SQL_GRANTS)}
        snap.public_grants = [f"{t} ({p})" for t, p in _rows(cur, SQL_PUBLIC)]
        snap.public_create_schemas = [r[0] for r in _rows(cur, SQL_PUBLIC_SCHEMA)]
        snap.definer_without_path = [r[0] for r in _rows(cur, SQL_DEFINER)]
        for name in SETTINGS:
            snap.settings[name] = _rows(cur, f"SELECT current_setting('{name}')")[0][0]
        snap.pgaudit_log = _rows(cur, "SELECT current_setting('pgaudit.log', true)")[0][0]
        snap.session_user, snap.session_is_superuser = _rows(
            cur, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        )[0]
        snap.pgaudit_installed = bool(
            _rows(cur, "SELECT count(*) FROM pg_extension WHERE extname = 'pgaudit'")[0][0]
        )
        try:
            snap.hba = [
                dict(
                    zip(
                        ("line", "type", "database", "user", "address", "method", "error"),
                        r,
                        strict=True,
                    )
                )
                for r in _rows(cur, SQL_HBA)
            ]
        except Exception as exc:  # noqa: BLE001 - needs superuser or pg_read_server_files-like grant
            snap.hba_error = str(exc).splitlines()[0]
    return snap


def _f(snap: DbSnapshot, check: str, sev: str, zh: str, en: str, **kw: Any) -> FindingRecord:
    return finding(check, "database", snap.database_id, sev, zh, en, **kw)  # type: ignore[arg-type]


def _superusers(snap: DbSnapshot) -> FindingRecord:
    supers = sorted(r for r, a in snap.roles.items() if a["rolsuper"])
    sev = "warn" if len(supers) > 1 else "ok"
    return _f(
        snap,
        "security.superusers",
        sev,
        f"超级用户 {len(supers)} 个：{', '.join(supers)}",
        f"{len(supers)} superuser(s): {', '.join(supers)}",
        value=len(supers),
        suggestion_zh="只保留一个超级用户，日常账号不用超级用户" if sev != "ok" else None,
        suggestion_en="keep one superuser; no daily account is a superuser"
        if sev != "ok"
        else None,
        roles=supers,
    )


def _hba(snap: DbSnapshot) -> FindingRecord:
    if snap.hba is None:
        return _f(
            snap,
            "security.hba",
            "check_error",
            f"无法读取 pg_hba 规则：{snap.hba_error}",
            f"cannot read pg_hba_file_rules: {snap.hba_error}",
        )
    weak = [r for r in snap.hba if r["method"] in WEAK_HBA]
    sev = max((WEAK_HBA[r["method"]] for r in weak), key=("warn", "critical").index, default="ok")
    lines = [
        f"line {r['line']}: {r['type']} {','.join(r['database'] or [])} "
        f"{','.join(r['user'] or [])} {r['address'] or ''} {r['method']}"
        for r in weak
    ]
    return _f(
        snap,
        "security.hba",
        sev,
        f"pg_hba 中弱认证规则 {len(weak)} 条（trust/password/md5）"
        if weak
        else "pg_hba 认证方式均为强认证",
        f"{len(weak)} weak pg_hba rule(s) (trust/password/md5)"
        if weak
        else "pg_hba: strong methods only",
        suggestion_zh="改为 scram-sha-256（trust 不验证密码，password 明文传输）" if weak else None,
        suggestion_en="use scram-sha-256 (trust checks nothing, password is cleartext)"
        if weak
        else None,
        rules=lines,
    )


def _settings(snap: DbSnapshot) -> list[FindingRecord]:
    s, out = snap.settings, []
    enc = s["password_encryption"]
    out.append(
        _f(
            snap,
            "security.password_encryption",
            "ok" if enc == "scram-sha-256" else "warn",
            f"密码加密方式 password_encryption = {enc}",
            f"password_encryption = {enc}",
        )
    )
    ssl_ok = s["ssl"] == "on" and s["ssl_min_protocol_version"] in ("TLSv1.2", "TLSv1.3")
    out.append(
        _f(
            snap,
            "security.ssl",
            "ok" if ssl_ok else "warn",
            f"传输加密 ssl = {s['ssl']}，最低协议 {s['ssl_min_protocol_version']}",
            f"ssl = {s['ssl']}, minimum protocol {s['ssl_min_protocol_version']}",
            suggestion_zh=None if ssl_ok else "开启 ssl 并要求 TLSv1.2 以上（hostssl 规则）",
            suggestion_en=None if ssl_ok else "enable ssl, require TLSv1.2+ (hostssl rules)",
        )
    )
    missing = [
        name
        for name, escapes in PREFIX_NEEDS.items()
        if not any(e in s["log_line_prefix"] for e in escapes)
    ]
    logging_ok = s["log_connections"] == "on" and s["log_disconnections"] == "on" and not missing
    out.append(
        _f(
            snap,
            "security.connection_logging",
            "ok" if logging_ok else "warn",
            f"连接日志 log_connections={s['log_connections']} "
            f"log_disconnections={s['log_disconnections']} "
            f"log_line_prefix='{s['log_line_prefix']}'"
            + (f" 缺 {', '.join(missing)}" if missing else ""),
            f"log_connections={s['log_connections']}, "
            f"log_disconnections={s['log_disconnections']}, "
            f"log_line_prefix='{s['log_line_prefix']}'"
            + (f" lacks {', '.join(missing)}" if missing else ""),
        )
    )
    out.append(_pgaudit(snap))
    out.append(
        _f(
            snap,
            "security.data_checksums",
            "ok" if s["data_checksums"] == "on" else "warn",
            f"数据校验和 data_checksums = {s['data_checksums']}",
            f"data_checksums = {s['data_checksums']}",
            suggestion_zh=None
            if s["data_checksums"] == "on"
            else "initdb --data-checksums 或 pg_checksums --enable（需停机）",
            suggestion_en=None
            if s["data_checksums"] == "on"
            else "initdb --data-checksums or pg_checksums --enable (offline)",
        )
    )
    return out


def _pgaudit(snap: DbSnapshot) -> FindingRecord:
    loaded = "pgaudit" in snap.settings["shared_preload_libraries"]
    log = (snap.pgaudit_log or "").strip().lower()
    configured = loaded and log not in ("", "none")
    state_zh = (
        "未加载"
        if not loaded
        else "已加载但 pgaudit.log 未配置"
        if not configured
        else f"已配置 pgaudit.log={log}"
    )
    state_en = (
        "not loaded"
        if not loaded
        else "loaded, pgaudit.log not set"
        if not configured
        else f"pgaudit.log={log}"
    )
    return _f(
        snap,
        "security.pgaudit",
        "ok" if configured else "warn",
        f"语句审计 pgaudit {state_zh}",
        f"pgaudit {state_en}",
        suggestion_zh=None
        if configured
        else "shared_preload_libraries 加 pgaudit；pgaudit.log = 'ddl, role, write'",
        suggestion_en=None
        if configured
        else "add pgaudit to shared_preload_libraries; pgaudit.log = 'ddl, role, write'",
        extension_installed=snap.pgaudit_installed,
    )


def _privileges(snap: DbSnapshot) -> list[FindingRecord]:
    public = snap.public_grants + [f"schema {n} (CREATE)" for n in snap.public_create_schemas]
    definer = snap.definer_without_path
    return [
        _f(
            snap,
            "security.public_grants",
            "warn" if public else "ok",
            f"授予 PUBLIC 的权限 {len(public)} 项" if public else "无授予 PUBLIC 的表权限",
            f"{len(public)} grant(s) to PUBLIC" if public else "no table grants to PUBLIC",
            objects=public[:50],
        ),
        _f(
            snap,
            "security.definer_search_path",
            "warn" if definer else "ok",
            f"未固定 search_path 的 SECURITY DEFINER 函数 {len(definer)} 个"
            if definer
            else "SECURITY DEFINER 函数均固定了 search_path",
            f"{len(definer)} SECURITY DEFINER function(s) without search_path"
            if definer
            else "every SECURITY DEFINER function pins search_path",
            functions=definer[:50],
            suggestion_zh="ALTER FUNCTION … SET search_path = pg_catalog, <schema>"
            if definer
            else None,
            suggestion_en="ALTER FUNCTION … SET search_path = pg_catalog, <schema>"
            if definer
            else None,
        ),
    ]


def _connection_role(snap: DbSnapshot) -> FindingRecord:
    sev = "warn" if snap.session_is_superuser else "ok"
    return _f(
        snap,
        "security.connection_role",
        sev,
        f"运维连接使用{'超级用户' if sev != 'ok' else '普通角色'} {snap.session_user}",
        f"the ops connection logs in as {'superuser ' if sev != 'ok' else ''}{snap.session_user}",
        suggestion_zh="为巡检/审计建专用角色（pg_monitor），不用超级用户" if sev != "ok" else None,
        suggestion_en="use a dedicated role (pg_monitor) for inspection/audit, not a superuser"
        if sev != "ok"
        else None,
    )


def evaluate(snap: DbSnapshot) -> list[FindingRecord]:
    """Findings from one snapshot (baseline drift is added by the caller)."""
    return [
        _superusers(snap),
        _connection_role(snap),
        _hba(snap),
        *_settings(snap),
        *_privileges(snap),
    ]
