"""Host checks (主机巡检): one POSIX sh script per host, run through the `CommandRunner`.

The script (`build_script`) prints one tab-separated record per line (``key<TAB>fields``) and
never stops at a failing command: a missing tool yields a record saying so, which becomes an
'ok with a note' (the tool is simply not used on that host: no systemd, no chrony, no apt) or
a check_error (the tool is there but failed). It reads /proc, df, ps and — when present —
systemctl, chronyc/ntpq/timedatectl, apt-get/dnf/yum, each slow command under ``timeout``.
It is plain POSIX sh (tested with dash; bash works too) using coreutils, procps and /proc as
found on Debian/Ubuntu and RHEL-likes; BusyBox hosts are not a target (untested).

Pending updates: ``apt-get -s upgrade`` costs seconds of CPU, so the script caches its result
in ``~/.cache/hisops/`` and recomputes it only when the package database, the package lists or
/etc/apt changed — the answer depends on nothing else.

Days until full: the caller passes the previous used-bytes sample per path (``fs_previous``,
from the catalog's metric series ``fs_used_bytes:<path>`` that `engine.metrics_from` emits);
without it only the percentage thresholds apply.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hisops.catalog.records import FindingRecord
from hisops.inspect.findings import Target, classify, fmt_bytes, fmt_seconds, plural, worst
from hisops.inspect.findings import threshold_text as _th

SCRIPT_TIMEOUT_S = 90
MIN_GROWTH_INTERVAL_H = 1.0

_PRELUDE = r"""LC_ALL=C; export LC_ALL
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; export PATH
have() { command -v "$1" >/dev/null 2>&1; }
lim() { s=$1; shift; if have timeout; then timeout "$s" "$@"; else "$@"; fi; }
one() { tr '\n\t' '  ' | cut -c1-400; }
printf 'clock\t%s\n' "$(date +%s.%N)"
printf 'os\t%s\n' "$(uname -srm)"
[ -r /etc/os-release ] &&
  printf 'os_release\t%s\n' "$(. /etc/os-release; echo "${PRETTY_NAME:-$ID}")"
printf 'cpus\t%s\n' "$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null ||
  grep -c '^processor' /proc/cpuinfo)"
[ -r /proc/loadavg ] && printf 'loadavg\t%s\n' "$(cat /proc/loadavg)"
[ -r /proc/uptime ] && printf 'uptime\t%s\n' "$(cut -d' ' -f1 /proc/uptime)"
[ -r /proc/meminfo ] && awk '/^(MemTotal|MemAvailable|MemFree|Buffers|Cached|SwapTotal|SwapFree):/ {
    sub(":", "", $1); print "mem\t" $1 "\t" $2 }' /proc/meminfo
fs() {
  if o=$(df -P -k -- "$1" 2>&1); then printf 'fs\t%s\t%s\n' "$1" "$(printf '%s\n' "$o" | tail -n 1)"
  else printf 'fserr\t%s\t%s\n' "$1" "$(printf '%s' "$o" | one)"; fi
  if o=$(df -P -i -- "$1" 2>/dev/null); then
    printf 'inode\t%s\t%s\n' "$1" "$(printf '%s\n' "$o" | tail -n 1)"; fi
}
if [ -d /run/systemd/system ] && have systemctl; then init=systemd; else init=other; fi
printf 'init\t%s\n' "$init"
listening() {  # listening PORT: a TCP socket in LISTEN state on that port (IPv4 or IPv6)
  if [ -r /proc/net/tcp ]; then
    h=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
      awk -v h="$h" '$4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }'
  else (ss -ltn 2>/dev/null || netstat -ltn 2>/dev/null) |
    awk -v p="$1" '$0 ~ "[:.]" p "[ \t]" { f = 1 } END { exit !f }'; fi
}
svc() {  # svc NAME "PROCESS..." PORT: systemd's view, else the process list; and the port if given
  st=active; how=
  if [ "$init" = systemd ] && [ -z "$4" ]; then
    st=$(systemctl is-active -- "$1" 2>/dev/null | head -n 1); how=systemd
  elif [ -n "$2" ]; then
    st=inactive; how="process $2"
    for p in $2; do n=$(printf '%s' "$p" | cut -c1-15)
      if ps -e -o comm= 2>/dev/null | grep -F -x -q -e "$p" -e "$n"; then
        st=active; how="process $p"; break
      fi
    done
  fi
  if [ -n "$3" ]; then
    how="${how:+$how, }port $3"
    [ "$st" = active ] && { listening "$3" || st="not listening"; }
  fi
  printf 'svc\t%s\t%s\t%s\n' "$1" "${st:-unknown}" "$how"
}
if [ "$init" = systemd ]; then
  printf 'failed\t%s\n' "$(lim 10 systemctl list-units --state=failed --no-legend --plain \
    2>/dev/null | awk '{print $1}' | tr '\n' ' ')"
else printf 'failed\tna\n'; fi
if have chronyc; then
  printf 'chrony\t%s\n' "$(lim 5 chronyc -n tracking 2>&1 | grep -i '^System time' | one)"
elif have ntpq; then printf 'ntpq\t%s\n' "$(lim 5 ntpq -c 'rv 0 offset' 2>&1 | one)"; fi
have timedatectl &&
  printf 'ntpsync\t%s\n' "$(lim 5 timedatectl show -p NTPSynchronized --value 2>/dev/null | one)"
cache="${HOME:-/tmp}/.cache/hisops"; mkdir -p "$cache" 2>/dev/null
# cached NAME CMD...: reuse the output unless the package state changed since it was made
cached() {
  f="$cache/$1"; shift
  if [ -s "$f" ] && [ -z "$(find /var/lib/dpkg/status /var/lib/apt/lists /etc/apt /var/lib/rpm \
      /var/cache/dnf /var/cache/yum -newer "$f" 2>/dev/null | head -n 1)" ]; then
    cat "$f"; return 0
  fi
  if out=$("$@"); then
    printf '%s\n' "$out" > "$f.tmp" 2>/dev/null && mv "$f.tmp" "$f" 2>/dev/null
    printf '%s\n' "$out"; return 0
  fi
  return 1
}
apt_updates() {
  lim 120 apt-get -s -o Debug::NoLocking=true upgrade 2>/dev/null |
    awk '/^Inst / { n++; if ($0 ~ /[Ss]ecurity/) s++ } END { print n+0, s+0 }'
}
dnf_updates() { o=$(lim 120 "$1" -C -q updateinfo list --security 2>/dev/null) || return 1
  printf '%s\n' "$o" | awk 'NF >= 3 { s++ } END { print "na", s+0 }'; }
if have apt-get; then
  if r=$(cached apt-updates apt_updates); then printf 'updates\tapt\t%s\n' "$r"
  else printf 'updates\tapt\terror\n'; fi
elif have dnf || have yum; then
  pm=dnf; have dnf || pm=yum
  if r=$(cached "$pm-updates" dnf_updates "$pm"); then printf 'updates\t%s\t%s\n' "$pm" "$r"
  else printf 'updates\t%s\terror\n' "$pm"; fi
else printf 'updates\tnone\n'; fi
"""


#: systemd unit name → process names (``ps -o comm``) to look for on hosts without systemd.
#: Units not listed are looked for under their own name; an inventory entry can name the
#: process (``{name: his-app, process: java}``) and/or a TCP port that must be listening.
SERVICE_PROCESSES: dict[str, tuple[str, ...]] = {
    "postgresql": ("postgres", "postmaster"),
    "postgres": ("postgres",),
    "mysql": ("mysqld",),
    "mysqld": ("mysqld",),
    "mariadb": ("mariadbd", "mysqld"),
    "nginx": ("nginx",),
    "httpd": ("httpd",),
    "apache2": ("apache2",),
    "ssh": ("sshd",),
    "sshd": ("sshd",),
    "cron": ("cron",),
    "crond": ("crond",),
    "chrony": ("chronyd",),
    "chronyd": ("chronyd",),
    "ntp": ("ntpd",),
    "ntpd": ("ntpd",),
    "redis": ("redis-server",),
    "redis-server": ("redis-server",),
    "docker": ("dockerd",),
    "containerd": ("containerd",),
    "pgbouncer": ("pgbouncer",),
    "haproxy": ("haproxy",),
    "keepalived": ("keepalived",),
    "rsyslog": ("rsyslogd",),
    "tomcat": ("java",),
    "tomcat9": ("java",),
    "zabbix-agent": ("zabbix_agentd",),
    "zabbix-agent2": ("zabbix_agent2",),
}


def process_names(unit: str) -> tuple[str, ...]:
    """'postgresql@15-main.service' → ('postgres', 'postmaster'); unknown units: their own name."""
    base = unit.removesuffix(".service").split("@", 1)[0]
    return SERVICE_PROCESSES.get(base, (base,))


def service_line(service: Any) -> str:
    """One ``svc NAME "PROCESSES" PORT`` call for a service of the inventory (a name or a spec)."""
    name = service if isinstance(service, str) else service.name
    process = None if isinstance(service, str) else service.process
    port = None if isinstance(service, str) else service.port
    procs = " ".join((process,) if process else process_names(name))
    explicit = "1" if process else ""
    return (
        f"svc {shlex.quote(name)} {shlex.quote(procs)} {shlex.quote(str(port or ''))} "
        f"{shlex.quote(explicit)}\n"
    )


def service_name(service: Any) -> str:
    return service if isinstance(service, str) else service.name


def build_script(disk_paths: list[str], services: list[Any], extra: str = "") -> str:
    """The whole host check as one sh script (wrapped in ``sh -c`` so a
    remote login shell doesn't matter).

    ``extra``: more sh code to run in the same round trip (the log listing).
    """
    body = _PRELUDE
    body += "".join(f"fs {shlex.quote(p)}\n" for p in disk_paths)
    body += "".join(service_line(s) for s in services)
    body += extra + "printf 'done\\t1\\n'\n"
    return "sh -c " + shlex.quote(body)


# --- parsing -----------------------------------------------------------------------------------

_DF_RE = re.compile(r"\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+|-)%\s+(.+)$")


@dataclass
class HostFacts:
    """The script's output, parsed; absent keys mean the script could not tell."""

    records: dict[str, list[list[str]]] = field(default_factory=dict)

    def first(self, key: str) -> list[str] | None:
        rows = self.records.get(key)
        return rows[0] if rows else None

    def all(self, key: str) -> list[list[str]]:
        return self.records.get(key, [])


def parse_output(stdout: str) -> HostFacts:
    facts = HostFacts()
    for line in stdout.splitlines():
        if "\t" in line:
            key, rest = line.split("\t", 1)
            facts.records.setdefault(key, []).append(rest.split("\t"))
    return facts


def parse_df(line: str) -> tuple[int, int, int, str] | None:
    """(total, used, available, mount point) from a POSIX ``df -P`` data line (blocks or inodes)."""
    m = _DF_RE.search(line)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(5)


# --- evaluation --------------------------------------------------------------------------------


def check_filesystems(
    t: Target, facts: HostFacts, paths: list[str], previous: Mapping[str, tuple[datetime, float]]
) -> list[FindingRecord]:
    answered = {r[0] for r in facts.all("fs")} | {r[0] for r in facts.all("fserr")}
    out = [
        t.error(f"host.fs_used:{p}", "no answer from the host for this path")
        for p in paths
        if p not in answered
    ]
    for path, message in ((r[0], r[1] if len(r) > 1 else "") for r in facts.all("fserr")):
        out.append(t.error(f"host.fs_used:{path}", f"df {path}: {message}"))
    by_mount: dict[str, list[tuple[str, tuple[int, int, int, str]]]] = {}
    for path, line in ((r[0], r[1]) for r in facts.all("fs")):
        parsed = parse_df(line)
        if parsed is None:
            out.append(t.error(f"host.fs_used:{path}", f"unparseable df line: {line!r}"))
        else:  # paths on the same filesystem are one finding (df names its mount point)
            by_mount.setdefault(parsed[3], []).append((path, parsed))
    for entries in by_mount.values():
        path, parsed = entries[0]
        out.append(_fs_finding(t, path, parsed, previous.get(path), [p for p, _ in entries]))
    return out


def days_until_full(
    used_now: float, available: float, previous: tuple[datetime, float] | None, now: datetime
) -> tuple[float | None, float | None]:
    """(growth bytes per day, days until full) from the previous (time, used bytes) sample."""
    if previous is None:
        return None, None
    at, used_before = previous
    hours = (now - at).total_seconds() / 3600
    if hours < MIN_GROWTH_INTERVAL_H:
        return None, None
    per_day = (used_now - used_before) / hours * 24
    return per_day, (available / per_day if per_day > 0 else None)


def _fs_finding(
    t: Target,
    path: str,
    parsed: tuple[int, int, int, str],
    previous: tuple[datetime, float] | None,
    paths: list[str] | None = None,
) -> FindingRecord:
    total_k, used_k, avail_k, mount = parsed
    paths = paths or [path]
    shown = ", ".join(paths)
    pct = (
        100.0 * used_k / max(used_k + avail_k, 1)
    )  # like df: blocks reserved for root count as unusable
    used, avail = used_k * 1024, avail_k * 1024
    per_day, days = days_until_full(used, avail, previous, t.observed_at)
    pct_level, days_level = t.thresholds.filesystem_used_pct, t.thresholds.days_until_full
    severity = worst(classify(pct_level, pct), classify(days_level, days))
    growth_zh = f"，日增长 {fmt_bytes(per_day)}" if per_day is not None else ""
    full_zh = f"，约 {days:.1f} 天后写满" if days is not None else ""
    full_en = f", full in about {days:.1f} days" if days is not None else ""
    return t.make(
        f"host.fs_used:{path}",
        severity,
        round(pct, 1),
        f"used {_th(pct_level, '%')}; days until full {_th(days_level)}",
        value_text=f"{fmt_bytes(used)} / {fmt_bytes(used + avail)}",
        zh=f"{shown}（挂载点 {mount}）已用 {pct:.1f}%，剩余 {fmt_bytes(avail)}{growth_zh}{full_zh}",
        en=f"{shown} (mounted on {mount}) {pct:.1f}% used, {fmt_bytes(avail)} free"
        + (f", growing {fmt_bytes(per_day)}/day" if per_day is not None else "")
        + full_en,
        path=path,
        paths=paths,
        mount=mount,
        used_bytes=used,
        available_bytes=avail,
        total_bytes=total_k * 1024,
        growth_bytes_per_day=per_day,
        days_until_full=days,
        metrics={
            f"{name}:{p}": v
            for p in paths
            for name, v in (("fs_used_pct", pct), ("fs_used_bytes", used), ("fs_free_bytes", avail))
        },
    )


def check_inodes(t: Target, facts: HostFacts) -> list[FindingRecord]:
    out = []
    level = t.thresholds.inodes_free_pct
    mounts: set[str] = set()
    for path, line in ((r[0], r[1]) for r in facts.all("inode")):
        parsed = parse_df(line)
        if parsed is not None and parsed[3] in mounts:
            continue  # the same filesystem as an earlier path
        if parsed is not None:
            mounts.add(parsed[3])
        if parsed is None or parsed[0] == 0:  # btrfs and some others have no fixed inode table
            out.append(
                t.make(
                    f"host.inodes:{path}",
                    "ok",
                    None,
                    level,
                    unit="%",
                    value_text="n/a",
                    zh=f"{path} 所在文件系统不限制 inode",
                    en=f"{path}: the filesystem has no fixed inode count",
                )
            )
            continue
        total, used, free, mount = parsed
        pct = 100.0 * free / total
        out.append(
            t.percent(
                f"host.inodes:{path}",
                level,
                pct,
                value_text=f"{free:,} free",
                zh=f"{path}（{mount}）inode 剩余 {pct:.1f}%（{free:,}/{total:,}）",
                en=f"{path} ({mount}) {pct:.1f}% inodes free ({free:,} of {total:,})",
                metrics={f"inodes_free_pct:{path}": pct},
            )
        )
    return out


def check_load(t: Target, facts: HostFacts) -> FindingRecord:
    cpus = int(facts.first("cpus")[0])
    load1, load5, load15 = (float(x) for x in facts.first("loadavg")[0].split()[:3])
    per_cpu = load5 / max(cpus, 1)
    level = t.thresholds.load_per_cpu
    return t.make(
        "host.load",
        classify(level, per_cpu),
        round(per_cpu, 2),
        level,
        value_text=f"{load5} / {cpus} CPU",
        zh=f"5 分钟平均负载 {load5}，CPU {cpus} 个，每 CPU {per_cpu:.2f}",
        en=f"5-minute load {load5} on {cpus} CPUs, {per_cpu:.2f} per CPU",
        load1=load1,
        load5=load5,
        load15=load15,
        cpus=cpus,
        metrics={"load_per_cpu": per_cpu},
    )


def _meminfo(facts: HostFacts) -> dict[str, int]:
    return {row[0]: int(row[1]) * 1024 for row in facts.all("mem")}


def check_memory(t: Target, facts: HostFacts) -> FindingRecord:
    mem = _meminfo(facts)
    total = mem["MemTotal"]
    available = mem.get("MemAvailable")
    estimated = available is None  # kernels before 3.14
    if estimated:
        available = mem.get("MemFree", 0) + mem.get("Buffers", 0) + mem.get("Cached", 0)
    pct = 100.0 * available / total
    level = t.thresholds.memory_available_pct
    return t.percent(
        "host.memory",
        level,
        pct,
        value_text=f"{fmt_bytes(available)} / {fmt_bytes(total)}",
        zh=f"可用内存 {fmt_bytes(available)}，占 {pct:.1f}%" + ("（估算）" if estimated else ""),
        en=f"{fmt_bytes(available)} memory available, {pct:.1f}%"
        + (" (estimated)" if estimated else ""),
        total_bytes=total,
        available_bytes=available,
        metrics={"memory_available_pct": pct},
    )


def check_swap(t: Target, facts: HostFacts) -> FindingRecord:
    mem = _meminfo(facts)
    total, free = mem.get("SwapTotal", 0), mem.get("SwapFree", 0)
    level = t.thresholds.swap_free_pct
    if total == 0:
        return t.make(
            "host.swap",
            "ok",
            None,
            level,
            unit="%",
            value_text="no swap",
            zh="未配置交换分区",
            en="no swap configured",
        )
    pct = 100.0 * free / total
    return t.percent(
        "host.swap",
        level,
        pct,
        value_text=f"{fmt_bytes(free)} / {fmt_bytes(total)} free",
        zh=f"交换分区剩余 {pct:.1f}%（{fmt_bytes(free)}/{fmt_bytes(total)}）",
        en=f"{pct:.1f}% swap free ({fmt_bytes(free)} of {fmt_bytes(total)})",
        metrics={"swap_free_pct": pct},
    )


def check_services(t: Target, facts: HostFacts, services: list[Any]) -> FindingRecord | None:
    """Required services: systemd's ``is-active`` where systemd runs, else the process list
    (`SERVICE_PROCESSES`), plus a listening TCP port when the inventory names one. The finding
    says how each service was judged."""
    if not services:
        return None
    names = [service_name(s) for s in services]
    rows = {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in facts.all("svc")}
    missing = [s for s in names if s not in rows]
    if missing:
        return t.error("host.services", f"no answer for services {missing}")
    down = [s for s in names if rows[s][0] != "active"]
    methods = {s: rows[s][1] for s in names}
    how_zh = "；".join(f"{s}：{_method_zh(methods[s])}" for s in names)
    how_en = "; ".join(f"{s}: {methods[s] or 'unknown'}" for s in names)
    details = {
        "services": {s: {"state": rows[s][0], "method": methods[s]} for s in names},
        "init": (facts.first("init") or ["?"])[0],
    }
    if not down:
        return t.make(
            "host.services",
            "ok",
            0,
            "any inactive = critical",
            value_text=f"{len(names)} active",
            zh=f"必需服务均在运行（{how_zh}）",
            en=f"required services are running ({how_en})",
            **details,
        )
    states = ", ".join(f"{s}={rows[s][0] or 'unknown'} ({methods[s] or 'unknown'})" for s in down)
    return t.make(
        "host.services",
        "critical",
        len(down),
        "any inactive = critical",
        value_text=", ".join(down),
        zh=f"必需服务未运行：{states}",
        en=f"required services not running: {states}",
        sugg_zh=(
            f"查看 {', '.join(down)} 的日志（journalctl -u 服务名 "
            "或应用日志），重启后确认业务恢复。"
        ),
        sugg_en=f"Read the logs of {', '.join(down)} (journalctl -u NAME or the application's "
        "log), restart, check the business.",
        **details,
    )


def _method_zh(method: str) -> str:
    return (
        method.replace("systemd", "systemd 状态").replace("process", "进程").replace("port", "端口")
        or "未知"
    )


def check_failed_units(t: Target, facts: HostFacts) -> FindingRecord:
    level = t.thresholds.failed_units
    row = facts.first("failed")
    if row is None:
        return t.error("host.failed_units", "no answer from the host")
    if row[0] == "na":
        return t.make(
            "host.failed_units",
            "ok",
            None,
            level,
            value_text="no systemd",
            zh="主机未使用 systemd，不检查失败单元",
            en="host does not run systemd; no units to check",
        )
    units = row[0].split()
    return t.make(
        "host.failed_units",
        classify(level, len(units)),
        len(units),
        level,
        value_text=", ".join(units[:5]) or "none",
        zh=f"失败的 systemd 单元 {len(units)} 个" + (f"：{', '.join(units[:10])}" if units else ""),
        en=plural(len(units), "failed systemd unit")
        + (f": {', '.join(units[:10])}" if units else ""),
        units=units,
    )


def parse_chrony(text: str) -> float | None:
    """'System time : 0.000012 seconds slow of NTP time' → -0.000012 (host behind NTP)."""
    m = re.search(r"([0-9.]+) seconds (slow|fast)", text)
    return None if not m else float(m.group(1)) * (-1 if m.group(2) == "slow" else 1)


def parse_ntpq(text: str) -> float | None:
    m = re.search(r"offset=(-?[0-9.]+)", text)
    return None if not m else float(m.group(1)) / 1000  # ntpq reports milliseconds


def clock_offset(facts: HostFacts, sent_at: float, received_at: float) -> tuple[float | None, str]:
    """Offset in seconds and its source: chrony/ntpd's own measurement, else
    a bound against this machine.

    The bound: the host's ``date`` ran somewhere between sending and receiving; we take the
    smallest offset consistent with that window, so a slow link never fakes an offset.
    """
    for key, parse in (("chrony", parse_chrony), ("ntpq", parse_ntpq)):
        row = facts.first(key)
        value = parse(row[0]) if row else None
        if value is not None:
            return value, key
    row = facts.first("clock")
    try:
        host_time = float(row[0]) if row else None
    except ValueError:
        host_time = float(row[0].split(".")[0]) if row and row[0].split(".")[0].isdigit() else None
    if host_time is None:
        return None, "none"
    low, high = host_time - received_at, host_time - sent_at
    offset = 0.0 if low <= 0 <= high else (low if low > 0 else high)
    return offset, "compared with the inspection server"


def check_clock(t: Target, facts: HostFacts, sent_at: float, received_at: float) -> FindingRecord:
    offset, source = clock_offset(facts, sent_at, received_at)
    level = t.thresholds.clock_offset_seconds
    sync = (facts.first("ntpsync") or [""])[0].strip()
    if offset is None:
        return t.error("host.clock", "could not read the host clock")
    severity = classify(level, abs(offset))
    if sync == "no":
        severity = worst(severity, "warn")
    note_zh = "；NTP 未同步" if sync == "no" else ""
    note_en = "; NTP not synchronised" if sync == "no" else ""
    return t.make(
        "host.clock",
        severity,
        round(abs(offset), 4),
        level,
        unit=" s",
        value_text=f"{offset:+.4f} s",
        zh=f"时钟偏差 {offset:+.4f} 秒（来源：{source}）{note_zh}",
        en=f"clock offset {offset:+.4f} s (source: {source}){note_en}",
        source=source,
        ntp_synchronized=sync or None,
        window_s=round(received_at - sent_at, 4),
    )


def check_uptime(t: Target, facts: HostFacts) -> FindingRecord:
    seconds = float(facts.first("uptime")[0])
    level = t.thresholds.uptime_minutes
    severity = classify(level, seconds / 60)
    return t.make(
        "host.uptime",
        severity,
        round(seconds / 60, 1),
        level,
        unit=" min",
        value_text=fmt_seconds(seconds),
        zh=("主机刚重启，" if severity != "ok" else "") + f"已运行 {fmt_seconds(seconds)}",
        en=("rebooted recently, " if severity != "ok" else "") + f"up for {fmt_seconds(seconds)}",
        os=(facts.first("os") or [""])[0],
        os_release=(facts.first("os_release") or [""])[0],
    )


def check_updates(t: Target, facts: HostFacts) -> FindingRecord:
    """Any pending security update = warn (patch in the maintenance window, 第八条)."""
    row = facts.first("updates")
    if row is None:
        return t.error("host.updates", "no answer from the host")
    tool = row[0]
    if tool == "none":
        return t.make(
            "host.updates",
            "ok",
            None,
            "any security update = warn",
            value_text="not checked",
            zh="未找到 apt/dnf/yum，无法检查待安装更新",
            en="no apt/dnf/yum on the host; updates not checked",
        )
    if len(row) < 2 or row[1] == "error":
        return t.error(
            "host.updates",
            f"{tool} could not list pending updates (package cache missing or locked?)",
        )
    total, security = row[1].split()
    security_n = int(security)
    total_text = "" if total == "na" else f"，共 {total} 个可更新包"
    return t.make(
        "host.updates",
        "warn" if security_n else "ok",
        security_n,
        "any security update = warn",
        value_text=f"{security_n} security",
        zh=f"待安装安全更新 {security_n} 个{total_text}（{tool}，基于本机软件源缓存）",
        en=plural(security_n, "pending security update")
        + ("" if total == "na" else f", {total} in all")
        + f" ({tool}, from the host's package lists)",
        tool=tool,
        total=None if total == "na" else int(total),
        security=security_n,
    )


def evaluate(
    t: Target,
    stdout: str,
    *,
    services: list[str],
    sent_at: float,
    received_at: float,
    disk_paths: list[str] | None = None,
    fs_previous: Mapping[str, tuple[datetime, float]] | None = None,
) -> list[FindingRecord]:
    """All host findings from the script output; each check fails alone (check_error)."""
    facts = parse_output(stdout)
    out: list[FindingRecord] = []
    singles: list[tuple[str, Any]] = [
        ("host.load", lambda: check_load(t, facts)),
        ("host.memory", lambda: check_memory(t, facts)),
        ("host.swap", lambda: check_swap(t, facts)),
        ("host.services", lambda: check_services(t, facts, services)),
        ("host.clock", lambda: check_clock(t, facts, sent_at, received_at)),
        ("host.uptime", lambda: check_uptime(t, facts)),
        ("host.updates", lambda: check_updates(t, facts)),
        ("host.failed_units", lambda: check_failed_units(t, facts)),
    ]
    for check_id, group in (
        ("host.fs_used", lambda: check_filesystems(t, facts, disk_paths or [], fs_previous or {})),
        ("host.inodes", lambda: check_inodes(t, facts)),
    ):
        out += t.guarded(check_id, group)
    for check_id, fn in singles:
        out += t.guarded(check_id, fn)
    return out
