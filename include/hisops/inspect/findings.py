"""Building findings (巡检发现): one `FindingRecord` per check and target, Chinese first.

Every check module builds its results through `finding()`, so all findings carry the same
fields: a bilingual message, the measured value, the threshold as text and a 处理建议
(suggested handling step). Default suggestions per check live in `SUGGESTIONS`; a check passes
its own only when it knows better (e.g. which table to vacuum).

Metrics for trend storage ride along in ``details["metrics"]`` ({name: value}); see
`hisops.inspect.engine.metrics_from`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hisops import severity as ranking
from hisops.catalog.records import FindingRecord, Severity, TargetKind
from hisops.inventory.thresholds import Level, Thresholds, fmt_number

SEVERITY_ZH = {"ok": "正常", "warn": "警告", "critical": "严重", "check_error": "检查出错"}

#: check id (or its prefix before the first ':') → (处理建议,
#: suggestion) used when severity is not ok
SUGGESTIONS: dict[str, tuple[str, str]] = {
    "database.reachable": (
        "确认数据库服务是否运行、网络/防火墙是否放通、连接账号密码是否正确；"
        "必要时按应急预案切换备库。",
        "Check that the server runs, the network/firewall allows it and the credentials are "
        "right; fail over to the standby per the emergency plan if needed.",
    ),
    "host.reachable": (
        "确认主机是否开机、SSH 服务与网络是否正常、巡检账号密钥是否有效。",
        "Check that the host is up, sshd and the network work, and the inspection key is valid.",
    ),
    "endpoint.reachable": (
        "确认应用服务是否运行、网络是否可达。",
        "Check that the application runs and is reachable.",
    ),
    "db.connections": (
        "排查连接来源（应用连接池配置、泄漏的会话），必要时调大 max_connections 或使用连接池。",
        "Find who holds the connections (pool settings, leaked sessions); add a pooler or "
        "raise max_connections if justified.",
    ),
    "db.long_queries": (
        "联系应用负责人确认长查询是否正常；确认异常后可用 pg_cancel_backend(pid) 取消。",
        "Ask the application owner whether the long query is expected; cancel it with "
        "pg_cancel_backend(pid) if not.",
    ),
    "db.long_transactions": (
        "长事务会阻止清理（VACUUM）并一直持有锁：联系应用方确认事务为何不提交；确认异常后"
        "pg_terminate_backend(pid)，并为应用设置合理的事务超时。",
        "A long open transaction blocks vacuum and keeps its locks: ask the application "
        "owner why it does not commit; end it with pg_terminate_backend(pid) if it is stuck, "
        "and set a transaction timeout in the application.",
    ),
    "db.index_bloat": (
        "索引膨胀（估算）：维护窗口内 REINDEX INDEX CONCURRENTLY 重建。",
        "Index bloat (estimate): rebuild with REINDEX INDEX CONCURRENTLY "
        "in the maintenance window.",
    ),
    "db.idle_in_tx": (
        "会话开启事务后长时间未提交，会阻塞清理并持有锁；联系应用方修复，必要时 "
        "pg_terminate_backend(pid)，并设置 idle_in_transaction_session_timeout。",
        "Sessions idle in a transaction block vacuum and hold locks; have the application fixed, "
        "terminate with pg_terminate_backend(pid) if needed, set "
        "idle_in_transaction_session_timeout.",
    ),
    "db.locks": (
        "查看阻塞者（details.blockers）在做什么；与应用方确认后结束阻塞会话。",
        "See what the blocking sessions (details.blockers) do; end them after checking with the "
        "application owner.",
    ),
    "db.xid_age": (
        "事务号回卷风险：尽快在维护窗口对最老的数据库执行 VACUUM "
        "(FREEZE)，并检查长事务/复制槽是否阻止冻结。",
        "Wraparound risk: VACUUM (FREEZE) the oldest database in the maintenance window soon; look "
        "for long transactions or slots that hold back freezing.",
    ),
    "db.cache_hit": (
        "缓存命中率低：检查是否有大表全表扫描（缺索引），评估 shared_buffers 与内存。",
        "Low cache hit ratio: look for sequential scans of big tables (missing indexes); review "
        "shared_buffers and memory.",
    ),
    "db.dead_tuples": (
        "对所列表执行 VACUUM (ANALYZE)，并检查 autovacuum 参数是否需要按表调整。",
        "VACUUM (ANALYZE) the listed tables and review per-table autovacuum settings.",
    ),
    "db.vacuum_age": (
        "autovacuum 未跟上：检查 autovacuum 是否开启、是否被长事务阻塞；维护窗口内手工 VACUUM。",
        "Autovacuum is not keeping up: check it is on and not blocked by long transactions; "
        "VACUUM manually in the maintenance window.",
    ),
    "db.analyze_age": (
        "统计信息过旧：维护窗口内对所列表执行 ANALYZE。",
        "Statistics are stale: ANALYZE the listed tables in the maintenance window.",
    ),
    "db.bloat": (
        "表膨胀：维护窗口内执行 VACUUM；空间需回收时评估 pg_repack 或 VACUUM FULL（会锁表）。",
        "Table bloat: VACUUM in the maintenance window; to give space back consider pg_repack or "
        "VACUUM FULL (locks the table).",
    ),
    "db.size_growth": (
        "数据库增长过快：确认业务量变化，清理过期日志/临时数据（不得删除临床数据），评估扩容。",
        "The database grows fast: check the business volume, clean logs/temp data (never clinical "
        "data), plan more storage.",
    ),
    "db.replication": (
        "检查备库/复制槽状态与网络；复制槽长期不活动会导致 WAL 堆积占满磁盘，确认无用后删除。",
        "Check the standby / slot and the network; an inactive slot retains WAL until the disk "
        "fills — drop it if no longer used.",
    ),
    "db.wal_archive": (
        "WAL 归档积压：检查 archive_command 日志与归档存储空间。",
        "WAL archiving lags: check the archive_command errors and the archive storage.",
    ),
    "db.invalid_indexes": (
        "无效索引（多为并发建索引/重建失败残留）：确认后 DROP INDEX CONCURRENTLY 并重新创建。",
        "Invalid index (usually a failed CONCURRENTLY build): drop it with DROP INDEX "
        "CONCURRENTLY and build it again.",
    ),
    "db.sequences": (
        "序列即将耗尽：计划将列类型改为 bigint，或调整序列最大值；需变更流程审批。",
        "A sequence is near exhaustion: plan changing the column to bigint or the sequence's "
        "range, through the change process.",
    ),
    "db.backup_age": (
        "最近一次已验证备份过旧：检查 db_backup 与 backup_verification 任务是否失败并尽快补做。",
        "The last verified backup is too old: check the db_backup and backup_verification runs "
        "and make up for it now.",
    ),
    "db.uptime": (
        "数据库刚重启：查看数据库日志确认重启原因（崩溃/OOM/人工），并确认应用已恢复连接。",
        "The server restarted recently: read its log for the cause (crash/OOM/manual) and check "
        "the applications reconnected.",
    ),
    "db.version": (
        "数据库主版本已停止维护：制定升级计划（兼容性评估、备份、演练）。",
        "The major version is out of support: plan an upgrade "
        "(compatibility check, backup, drill).",
    ),
    "host.fs_used": (
        "清理过期日志、临时文件与过期备份（不得删除临床数据），或扩容磁盘。",
        "Clean old logs, temp files and expired backups (never clinical data), or add disk.",
    ),
    "host.inodes": (
        "inode 不足：查找并清理大量小文件（如会话/缓存/日志碎片目录）。",
        "Few inodes left: find and clean directories with many small files (sessions, caches).",
    ),
    "host.load": (
        "负载过高：用 top/pidstat 找出占用 CPU 的进程，确认是否为异常任务。",
        "High load: find the busy processes (top, pidstat) and check whether they are expected.",
    ),
    "host.memory": (
        "可用内存不足：找出占用内存的进程，检查是否有内存泄漏，必要时扩容。",
        "Low available memory: find the processes using it, look for leaks, add memory if needed.",
    ),
    "host.swap": (
        "交换分区使用较多：内存压力大，排查占用内存的进程。",
        "Swap is in use: memory pressure; find the processes using memory.",
    ),
    "host.services": (
        "必需服务未运行：查看服务日志（journalctl -u 服务名）并重启，确认业务恢复。",
        "A required service is not running: read its log (journalctl -u NAME), restart it, "
        "check the business works again.",
    ),
    "host.clock": (
        "时钟偏差：检查 chrony/NTP 服务与时间源，偏差会影响日志、证书和事务时间。",
        "Clock offset: check chrony/NTP and the time source; offsets break logs, certificates "
        "and transaction times.",
    ),
    "host.uptime": (
        "主机刚重启：确认重启原因（计划维护/掉电/内核崩溃）与服务均已恢复。",
        "The host rebooted recently: find out why (planned, power, kernel panic) and check the "
        "services are back.",
    ),
    "host.updates": (
        "有待安装的安全更新：在维护窗口内按第八条先备份、再更新并验证。",
        "Security updates are pending: install them in the maintenance window (Art. 8: back up "
        "first, verify after).",
    ),
    "host.failed_units": (
        "有失败的 systemd 单元：systemctl status 查看原因，修复后 systemctl reset-failed。",
        "Failed systemd units: see systemctl status, fix, then systemctl reset-failed.",
    ),
    "host.checks": (
        "巡检脚本未能在主机上完成：查看 details 中的错误输出。",
        "The inspection script did not finish on the host: see the error output in details.",
    ),
    "log.files": (
        "日志文件不存在：确认日志路径配置是否正确、应用是否仍在写日志。",
        "No log file matches: check the configured path and that the application still logs.",
    ),
    "log": (
        "查看样例日志行（已脱敏），定位错误来源并处理；频繁出现的错误应建事件跟踪。",
        "Read the (masked) sample lines, find the source of the errors and fix it.",
    ),
    "http.status": (
        "应用不可用或返回异常状态码：检查应用服务、反向代理与后端数据库。",
        "The application is down or answers a wrong status: check the service, the proxy and "
        "its database.",
    ),
    "http.latency": (
        "响应缓慢：检查应用服务器负载、数据库慢查询与网络。",
        "Slow responses: check the application server load, slow queries and the network.",
    ),
    "http.text": (
        "页面内容不符合预期（可能是错误页/维护页）：人工打开页面确认。",
        "The page does not contain the expected text (error or maintenance page?): "
        "open it and look.",
    ),
    "http.tls_days": (
        "证书即将过期或不受信任：尽快申请/更换证书并重启服务。",
        "The certificate expires soon or is not trusted: renew/replace it and reload the service.",
    ),
}


def now_utc() -> datetime:
    return datetime.now(UTC)


def classify(level: Level, value: float | None) -> Severity:
    """Severity of ``value`` against ``level``; no value → ok (nothing
    measured to complain about)."""
    return "ok" if value is None else level.classify(float(value))


def worst(*severities: Severity) -> Severity:
    """The most severe of ``severities`` (ranking: :mod:`hisops.severity`)."""
    return ranking.worst(severities)


def threshold_text(level: Level, unit: str = "") -> str:
    """'warn ≥ 80%, critical ≥ 95%' (≤ for lower-is-worse); 'disabled' when both levels are off.

    ``unit`` " B" renders byte limits readably ('warn ≥ 1.0 GB').
    """
    op = "≤" if level.lower_is_worse else "≥"
    show = (lambda v: fmt_bytes(v)) if unit == " B" else (lambda v: f"{fmt_number(v)}{unit}")
    parts = [
        f"{name} {op} {show(limit)}"
        for name, limit in (("warn", level.warn), ("critical", level.critical))
        if limit is not None
    ]
    return ", ".join(parts) or "disabled"


def suggestion_for(check_id: str) -> tuple[str, str] | None:
    """Default 处理建议: by check id without its ':<path>' suffix, else by kind prefix ('log')."""
    base = check_id.split(":", 1)[0]
    return SUGGESTIONS.get(base) or SUGGESTIONS.get(base.split(".", 1)[0])


def finding(
    check_id: str,
    kind: TargetKind,
    target_id: str,
    system_id: str | None,
    severity: Severity,
    value: float | None = None,
    threshold: Level | str | None = None,
    *,
    zh: str,
    en: str,
    sugg_zh: str | None = None,
    sugg_en: str | None = None,
    value_text: str | None = None,
    unit: str = "",
    observed_at: datetime | None = None,
    **details: Any,
) -> FindingRecord:
    """A finding; a non-ok finding without its own suggestion gets
    the default from `SUGGESTIONS`."""
    if severity != "ok" and sugg_zh is None and sugg_en is None:
        sugg_zh, sugg_en = suggestion_for(check_id) or (None, None)
    if isinstance(threshold, Level):
        threshold = threshold_text(threshold, unit)
    if value_text is None and value is not None and unit:  # the unit belongs next to the number
        value_text = (
            fmt_bytes(value) if unit == " B" else f"{fmt_number(round(float(value), 2))}{unit}"
        )
    return FindingRecord(
        check_id=check_id,
        target_kind=kind,
        target_id=target_id,
        system_id=system_id,
        severity=severity,
        message_zh=zh,
        message_en=en,
        value=None if value is None else float(value),
        value_text=value_text,
        threshold=threshold,
        suggestion_zh=sugg_zh,
        suggestion_en=sugg_en,
        details=_jsonable(details),
        observed_at=observed_at or now_utc(),
    )


def reachability(
    kind: TargetKind,
    target_id: str,
    system_id: str | None,
    reached: bool,
    zh: str,
    en: str,
    **details: Any,
) -> FindingRecord:
    """The target's `<kind>.reachable` finding: ok when it answered (that resolves the incident
    of an outage), critical when it could not be reached at all."""
    return finding(
        f"{kind}.reachable",
        kind,
        target_id,
        system_id,
        "ok" if reached else "critical",
        value_text="reachable" if reached else "unreachable",
        zh=zh,
        en=en,
        **details,
    )


def unreachable(
    kind: TargetKind, target_id: str, system_id: str | None, reason: str
) -> FindingRecord:
    """The target could not be reached at all: one critical `<kind>.reachable` finding."""
    zh, en = f"无法连接，未能巡检：{reason}", f"unreachable, not inspected: {reason}"
    return reachability(kind, target_id, system_id, False, zh, en, reason=reason)


def check_error(
    check_id: str, kind: TargetKind, target_id: str, system_id: str | None, exc: BaseException | str
) -> FindingRecord:
    """The check itself failed (query error, unparseable output): a
    check_error finding carrying the error."""
    error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {_first_line(str(exc))}"
    error = mask_sensitive(error)[:500]
    return finding(
        check_id,
        kind,
        target_id,
        system_id,
        "check_error",
        value_text="check error",
        zh=f"检查未能完成：{error}",
        en=f"check could not run: {error}",
        sugg_zh="查看错误信息；多为权限不足、超时或目标环境缺少命令，修复后下次巡检自动恢复。",
        sugg_en="Read the error; usually missing privileges, a timeout or a missing command on the "
        "target. The next inspection clears it once fixed.",
        error=error,
    )


@dataclass(frozen=True)
class Target:
    """Who the findings are about; `make()` fills kind/target/system into `finding()`."""

    kind: TargetKind
    target_id: str
    system_id: str | None
    thresholds: Thresholds
    observed_at: datetime
    tz: str | None = None  # the inventory's time zone: times in messages are for people

    def when(self, moment: datetime | str | None) -> str:
        """A time for a message, in the inventory's zone ('2026-12-01 08:30')."""
        from hisops.report.timefmt import fmt

        return fmt(moment, self.tz)

    def make(
        self,
        check_id: str,
        severity: Severity,
        value: float | None = None,
        threshold: Level | str | None = None,
        **kw: Any,
    ) -> FindingRecord:
        return finding(
            check_id,
            self.kind,
            self.target_id,
            self.system_id,
            severity,
            value,
            threshold,
            observed_at=self.observed_at,
            **kw,
        )

    def percent(
        self, check_id: str, level: Level, pct: float, digits: int = 1, **kw: Any
    ) -> FindingRecord:
        """A percentage measured against ``level``: classified, rounded to ``digits``, unit %."""
        return self.make(check_id, classify(level, pct), round(pct, digits), level, unit="%", **kw)

    def error(self, check_id: str, exc: BaseException | str) -> FindingRecord:
        return check_error(check_id, self.kind, self.target_id, self.system_id, exc)

    def guarded(self, check_id: str, fn: Callable[[], Any]) -> list[FindingRecord]:
        """Run one check; its finding(s) as a list, or a check_error when it raises.

        A broken check must never hide the others, so every check module
        runs its checks through this.
        """
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - turned into a check_error finding
            return [self.error(check_id, exc)]
        if result is None:
            return []
        return [result] if isinstance(result, FindingRecord) else list(result)

    def child(self, kind: TargetKind, target_id: str) -> Target:
        return Target(kind, target_id, self.system_id, self.thresholds, self.observed_at, self.tz)


# --- masking -----------------------------------------------------------------------------------

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # password=xxx, passwd: xxx, 密码：xxx, PASSWORD 'xxx' (a bare word after a space is prose:
    # "password authentication failed")
    (
        re.compile(
            r"(?i)((?:password|passwd|pwd|secret|token|密码)\s*[=:：]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"
        ),
        r"\1***",
    ),
    (
        re.compile(r"(?i)((?:password|passwd|pwd|secret|token|密码)\s+)(\"[^\"]*\"|'[^']*')"),
        r"\1***",
    ),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s]+@"), r"\1***@"),  # URLs with user:password@
    (
        re.compile(
            r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{2}[0-9]{3}[0-9Xx](?![0-9])"
        ),
        "<身份证号>",
    ),  # 18-digit resident ID card number
    (re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9])"), "<手机号>"),  # mobile phone
    (
        re.compile(r"(?<![0-9])0[1-9][0-9]{1,2}-[0-9]{7,8}(?![0-9])"),
        "<电话>",
    ),  # landline 010-12345678
)


def mask_sensitive(text: str) -> str:
    """Mask passwords/secrets, ID-card numbers and phone numbers (samples, query texts, errors)."""
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


# --- small formatting helpers ------------------------------------------------------------------


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 session', '2 sessions' (English count words; Chinese needs none)."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "(no message)"


def _jsonable(value: Any) -> Any:
    """details must go through JSON (catalog column): datetimes → ISO text, tuples → lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
