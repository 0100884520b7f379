"""Per host, one POSIX sh script (locally or over SSH): sshd, failed SSH logins, sudoers,
world-writable files, failed PostgreSQL logins in the server logs of the inventory. Read-only;
every scan streams through grep/awk (memory bounded by the number of distinct users/sources, not
the log size) and reads at most the last ``MAX_LOG_BYTES`` of each log.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hisops.catalog.records import FindingRecord
from hisops.security.findings import finding

if TYPE_CHECKING:
    from hisops.targets.runner import CommandRunner

MAX_LOG_BYTES = 200 * 1024 * 1024
AUTH_LOGS = ("/var/log/auth.log", "/var/log/secure")
SUDOERS = "/etc/sudoers /etc/sudoers.d/*"
PG_FAILED = "password authentication failed for user|no pg_hba.conf entry for host"
SSH_FAILED = "Failed password|Invalid user|authentication failure"

# awk: key = user@source of each failed login line (PostgreSQL and sshd wording)
_AWK_PG = (
    r"""{u="?"; h="?"; if (match($0, /for user "[^"]*"/)) u=substr($0, RSTART+10, RLENGTH-11);"""
    r""" if (match($0, /host "[^"]*"/)) h=substr($0, RSTART+6, RLENGTH-7);"""
    r""" else if (match($0, /\[[0-9a-f.:]+\(/)) h=substr($0, RSTART+1, RLENGTH-2);"""
    r""" c[u "@" h]++} END {for (k in c) print "PGFAIL", c[k], k}"""
)
_AWK_SSH = (
    r"""{u="?"; h="?"; if (match($0, /for (invalid user )?[^ ]+ from/)) {s=substr($0, RSTART+4,"""
    r""" RLENGTH-9); sub(/^invalid user /, "", s); u=s}"""
    r""" if (match($0, /from [0-9a-f.:]+/)) h=substr($0, RSTART+5, RLENGTH-5);"""
    r""" c[u "@" h]++} END {for (k in c) print "SSHFAIL", c[k], k}"""
)


def script(pg_logs: list[str], paths: list[str]) -> str:
    """The host script; each output line starts with a tag."""
    q = shlex.quote
    lines = [
        "export LC_ALL=C",
        "( sshd -T 2>/dev/null || cat /etc/ssh/sshd_config 2>/dev/null ) | awk "
        "'tolower($1) ~ /^(permitrootlogin|passwordauthentication)$/ "
        '{print "SSHD", tolower($1), $2}\'',
        f'for f in {" ".join(AUTH_LOGS)}; do [ -r "$f" ] && tail -c {MAX_LOG_BYTES} "$f" | '
        f"grep -aE {q(SSH_FAILED)} | awk {q(_AWK_SSH)}; done",
        f'for f in {SUDOERS}; do [ -f "$f" ] && [ -r "$f" ] && echo SUDO $(sha256sum "$f"); done '
        "2>/dev/null",
    ]
    for glob in pg_logs:
        lines.append(
            f'for f in {glob}; do [ -r "$f" ] && tail -c {MAX_LOG_BYTES} "$f" | '
            f"grep -aE {q(PG_FAILED)} | awk {q(_AWK_PG)}; done"
        )
    for path in paths:
        lines.append(
            f"[ -e {q(path)} ] && find {q(path)} -xdev \\( -type f -o -type d \\) -perm -0002 "
            "! -perm -1000 2>/dev/null | head -n 50 | sed 's/^/WW /'"
        )
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
    runner: CommandRunner, host_id: str, pg_logs: list[str], paths: list[str]
) -> HostSnapshot:
    result = runner.run(script(pg_logs, paths), timeout=120)
    return parse(host_id, result.stdout)


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
) -> FindingRecord:
    by_source: dict[str, int] = defaultdict(int)
    for key, n in counts.items():
        by_source[key.rsplit("@", 1)[-1]] += n
    worst = max(by_source.values(), default=0)
    sev = "critical" if worst >= critical else "warn" if worst >= warn else "ok"
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:10]
    listing = ", ".join(f"{k} ×{n}" for k, n in top) or "—"
    return _f(
        snap,
        check,
        sev,
        f"{what_zh}失败 {sum(counts.values())} 次（用户@来源）：{listing}",
        f"{sum(counts.values())} failed {what_en} (user@source): {listing}",
        value=float(worst),
        threshold=f"每来源 per source ≥ {warn} warn / ≥ {critical} critical",
        by_user_source=dict(top),
        suggestion_zh="核实来源地址；封禁暴力破解来源（fail2ban/防火墙）" if sev != "ok" else None,
        suggestion_en="check the sources; block brute-force sources (fail2ban/firewall)"
        if sev != "ok"
        else None,
    )


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
        ),
        _failed(
            snap,
            "security.failed_logins",
            snap.pg_failed,
            "数据库登录",
            "database logins",
            warn,
            critical,
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
