"""Per host, one POSIX sh script (locally or over SSH): sshd, sudoers, world-writable files and the
listing of the logs to read; then failed SSH logins (auth log) and failed PostgreSQL logins (the
host's inventory logs) counted per user@source by the inspection's log scanner
(:mod:`hisops.inspect.log_scan`): only the lines added since the last security audit (offsets per
file in the catalog, keyed ``security:<host>``; rotation and truncation handled there), streamed
through grep/awk on the host — memory bounded by the number of distinct users/sources, not the
log size. A first scan reads at most the last ``MAX_LOG_BYTES`` of each file. Read-only.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hisops.catalog.records import FindingRecord
from hisops.inspect import log_scan
from hisops.security.findings import finding

if TYPE_CHECKING:
    from hisops.targets.runner import CommandRunner

MAX_LOG_BYTES = 200 * 1024 * 1024
AUTH_LOGS = ("/var/log/auth.log", "/var/log/secure")
SUDOERS = "/etc/sudoers /etc/sudoers.d/*"
PG_FAILED = "password authentication failed for user|no pg_hba.conf entry for host"
SSH_FAILED = "Failed password|Invalid user|authentication failure"
#: log offsets of the security audit are its own (the inspection reads the same files)
OFFSETS_PREFIX = "security:"

# awk key extractors (body of a function of `line`): user@source of a failed login line
_KEY_PG = (
    r"""u="?"; h="?"; if (match(line, /for user "[^"]*"/)) u=substr(line, RSTART+10, RLENGTH-11);"""
    r""" if (match(line, /host "[^"]*"/)) h=substr(line, RSTART+6, RLENGTH-7);"""
    r""" else if (match(line, /\[[0-9a-f.:]+\(/)) h=substr(line, RSTART+1, RLENGTH-2);"""
    r""" return u "@" h"""
)
_KEY_SSH = (
    r"""u="?"; h="?"; if (match(line, /for (invalid user )?[^ ]+ from/)) {"""
    r""" t=substr(line, RSTART+4, RLENGTH-9); sub(/^invalid user /, "", t); u=t }"""
    r""" else if (match(line, /Invalid user [^ ]+ from/)) u=substr(line, RSTART+13, RLENGTH-18);"""
    r""" if (match(line, /from [0-9a-f.:]+/)) h=substr(line, RSTART+5, RLENGTH-5);"""
    r""" return u "@" h"""
)


def script(
    pg_logs: list[str], paths: list[str], auth_logs: tuple[str, ...] | list[str] = AUTH_LOGS
) -> str:
    """The host script; its own lines start with a tag and a space, the log listing's with a tab."""
    q = shlex.quote
    lines = [
        "export LC_ALL=C",
        "( sshd -T 2>/dev/null || cat /etc/ssh/sshd_config 2>/dev/null ) | awk 'tolower($1) ~ "
        '/^(permitrootlogin|passwordauthentication)$/ {print "SSHD", tolower($1), $2}\'',
        f'for f in {SUDOERS}; do [ -f "$f" ] && [ -r "$f" ] && echo SUDO $(sha256sum "$f"); '
        "done 2>/dev/null",
    ]
    for path in paths:
        lines.append(
            f"[ -e {q(path)} ] && find {q(path)} -xdev \\( -type f -o -type d \\) -perm -0002 "
            "! -perm -1000 2>/dev/null | head -n 50 | sed 's/^/WW /'"
        )
    lines.append(log_scan.listing_snippet([*auth_logs, *pg_logs]).rstrip("\n"))
    lines.append("echo DONE")
    return "\n".join(lines)


@dataclass
class HostSnapshot:
    host_id: str
    sshd: dict[str, str] = field(default_factory=dict)
    ssh_failed: dict[str, int] = field(default_factory=dict)
    pg_failed: dict[str, int] = field(default_factory=dict)
    sudoers: dict[str, str] = field(default_factory=dict)
    world_writable: list[str] = field(default_factory=list)
    complete: bool = False
    #: log files that could not be scanned this time (their failed logins are unknown)
    ssh_problems: list[str] = field(default_factory=list)
    pg_problems: list[str] = field(default_factory=list)


def parse(host_id: str, output: str) -> HostSnapshot:
    snap = HostSnapshot(host_id)
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "SSHD":
            key, _, value = rest.partition(" ")
            snap.sshd[key] = value.strip().lower()
        elif tag in ("SSHFAIL", "PGFAIL"):
            count, _, key = rest.partition(" ")
            target = snap.ssh_failed if tag == "SSHFAIL" else snap.pg_failed
            target[key] = target.get(key, 0) + int(count)
        elif tag == "SUDO":
            digest, _, path = rest.partition(" ")
            snap.sudoers[path.strip()] = digest
        elif tag == "WW":
            snap.world_writable.append(rest)
        elif tag == "DONE":
            snap.complete = True
    return snap


def collect(
    runner: CommandRunner,
    host_id: str,
    pg_logs: list[str],
    paths: list[str],
    remembered: log_scan.OffsetSource = None,
    auth_logs: tuple[str, ...] | list[str] = AUTH_LOGS,
) -> tuple[HostSnapshot, log_scan.LogOffsets]:
    """The host's snapshot and where reading of each log stopped (to remember for next time).

    ``remembered``: path → (inode, offset) of the last audit, or a function of the reader."""
    from hisops.inspect.host_checks import parse_output

    result = runner.run(script(pg_logs, paths, auth_logs), timeout=120)
    snap = parse(host_id, result.stdout)
    records = parse_output(result.stdout).records
    files, _none = log_scan.parse_listing(records)
    reader = log_scan.reader_of(records)
    for f in files:
        if f.error:
            kind = snap.ssh_problems if f.glob_index < len(auth_logs) else snap.pg_problems
            kind.append(f"{f.path}: {f.error}")
    readable = [f for f in files if f.error is None]
    plans = [
        replace(p, start=p.end - MAX_LOG_BYTES)
        if p.reason == "new" and p.end - p.start > MAX_LOG_BYTES
        else p
        for p in log_scan.plan_reads(readable, log_scan.remembered_for(remembered, reader))
    ]
    patterns = log_scan.PatternSet()
    patterns.add(SSH_FAILED)
    patterns.add(PG_FAILED)
    scan = log_scan.run_scan(
        runner, plans, patterns, keys={SSH_FAILED: _KEY_SSH, PG_FAILED: _KEY_PG}
    )
    ssh_files = {f.path for f in readable if f.glob_index < len(auth_logs)}
    for i, plan in enumerate(scan.plans):
        is_ssh = plan.path in ssh_files
        k = patterns.index[SSH_FAILED if is_ssh else PG_FAILED]
        into = snap.ssh_failed if is_ssh else snap.pg_failed
        problems = snap.ssh_problems if is_ssh else snap.pg_problems
        for seg_id in (f"r{i}", f"f{i}"):
            seg = scan.results.get(seg_id)
            if seg_id.startswith("r") and not plan.rotated_from:
                continue
            start = (
                plan.rotated_from[1] if seg_id.startswith("r") and plan.rotated_from else plan.start
            )
            if seg is None or seg.error or (seg.stop or 0) > start and not seg.counts:
                problems.append(f"{plan.path}: {(seg and seg.error) or 'no counts from the host'}")
                continue
            for key, n in seg.keys.get(k, {}).items():
                into[key] = into.get(key, 0) + n
    offsets = log_scan.new_offsets(scan)
    return snap, log_scan.LogOffsets(offsets, reader, frozenset(f.path for f in files))


def _f(snap: HostSnapshot, check: str, sev: str, zh: str, en: str, **kw: Any) -> FindingRecord:
    return finding(check, "host", snap.host_id, sev, zh, en, **kw)  # type: ignore[arg-type]


def _failed(
    snap: HostSnapshot,
    check: str,
    counts: dict[str, int],
    what_zh: str,
    what_en: str,
    warn: int,
    critical: int,
    problems: list[str] | None = None,
) -> FindingRecord:
    by_source: dict[str, int] = defaultdict(int)
    for key, n in counts.items():
        by_source[key.rsplit("@", 1)[-1]] += n
    worst = max(by_source.values(), default=0)
    sev = "critical" if worst >= critical else "warn" if worst >= warn else "ok"
    if problems and sev == "ok":
        sev = "check_error"  # some log could not be read: "no failed login" would be a guess
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:10]
    listing = ", ".join(f"{k} ×{n}" for k, n in top) or "—"
    unread = f"；未能读取 unread: {'; '.join(problems[:3])}" if problems else ""
    return _f(
        snap,
        check,
        sev,
        f"{what_zh}失败 {sum(counts.values())} 次（用户@来源，自上次审计）：{listing}{unread}",
        f"{sum(counts.values())} failed {what_en} since the last audit (user@source): "
        f"{listing}{unread}",
        value=float(worst),
        unread_logs=(problems or [])[:10],
        threshold=f"每来源 per source ≥ {warn} warn / ≥ {critical} critical",
        by_user_source=dict(top),
        suggestion_zh=_SUGGEST_ZH.get(sev),
        suggestion_en=_SUGGEST_EN.get(sev),
    )


_SUGGEST_ZH = {
    "warn": "核实来源地址；封禁暴力破解来源（fail2ban/防火墙）",
    "critical": "核实来源地址；封禁暴力破解来源（fail2ban/防火墙）",
    "check_error": "让审计所用账号可读该日志（如加入 adm 组）",
}
_SUGGEST_EN = {
    "warn": "check the sources; block brute-force sources (fail2ban/firewall)",
    "critical": "check the sources; block brute-force sources (fail2ban/firewall)",
    "check_error": "let the audit's login read the log (e.g. group adm)",
}


def evaluate(snap: HostSnapshot, *, warn: int = 10, critical: int = 50) -> list[FindingRecord]:
    if not snap.complete:
        return [
            _f(
                snap,
                "security.sshd",
                "check_error",
                "主机安全检查脚本未完成",
                "host security script did not finish",
            )
        ]
    root = snap.sshd.get("permitrootlogin", "prohibit-password")
    password = snap.sshd.get("passwordauthentication", "yes")
    sev = "critical" if root == "yes" else "warn" if password == "yes" else "ok"
    out = [
        _f(
            snap,
            "security.sshd",
            sev,
            f"sshd: PermitRootLogin {root}, PasswordAuthentication {password}",
            f"sshd: PermitRootLogin {root}, PasswordAuthentication {password}",
            suggestion_zh="PermitRootLogin no；PasswordAuthentication no（仅密钥）"
            if sev != "ok"
            else None,
            suggestion_en="PermitRootLogin no; PasswordAuthentication no (keys only)"
            if sev != "ok"
            else None,
        ),
        _failed(
            snap,
            "security.ssh_failed_logins",
            snap.ssh_failed,
            "SSH 登录",
            "SSH logins",
            warn,
            critical,
            snap.ssh_problems,
        ),
        _failed(
            snap,
            "security.failed_logins",
            snap.pg_failed,
            "数据库登录",
            "database logins",
            warn,
            critical,
            snap.pg_problems,
        ),
    ]
    ww = snap.world_writable
    out.append(
        _f(
            snap,
            "security.world_writable",
            "warn" if ww else "ok",
            f"任何人可写的文件/目录 {len(ww)} 个" if ww else "无任何人可写的文件",
            f"{len(ww)} world-writable file(s)/folder(s)" if ww else "no world-writable files",
            paths=ww[:50],
        )
    )
    return out
