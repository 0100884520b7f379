"""巡检报告 — the daily inspection report as one self-contained, mail-safe HTML page.

Input is what the catalog holds (findings, incidents, metric samples) plus a little context
(hospital, run, period); output is HTML with inline CSS only, tables for layout, no scripts,
Chinese first with English alongside. Everything shown is computed here from the input, so
the same numbers appear in the page, the mail body and the tests.

Pure domain: no Airflow, no database access (the caller loads the records).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hisops.catalog.records import SEVERITY_RANK, FindingRecord, IncidentRecord, MetricSample
from hisops.kpi.files import write_private

PRESENT_STATE = "当前状态，非历史 present state, not historical"
REPORT_FILE = "报告文件 report file"  # the saved page's path, last line of every text summary
SPARK = "▁▂▃▄▅▆▇█"
TREND_DAYS = 7
MAX_TREND_ROWS = (
    40  # beyond this, the series of targets with problems and the biggest movers are shown
)
COMPACT_AFTER = 30  # targets: above this, targets whose checks all passed share one line per system
MAIL_ROWS = 50  # summary (mail) variant: at most this many incidents / changes listed

# Key metrics for the 7-day trends: metric name -> (中文, English, unit). Order = display order.
# Per-path metrics are stored as "name:/path" (e.g. fs_used_pct:/data) and match on "name".
KEY_METRICS: dict[str, tuple[str, str, str]] = {
    "database_size_bytes": ("数据库大小", "database size", "bytes"),
    "connections_pct": ("连接使用率", "connections used", "%"),
    "xid_age_pct": ("事务号年龄", "xid age", "%"),
    "cache_hit_pct": ("缓存命中率", "cache hit", "%"),
    "fs_used_pct": ("磁盘使用率", "filesystem used", "%"),
    "memory_available_pct": ("可用内存", "memory available", "%"),
    "load_per_cpu": ("每核负载", "load per CPU", ""),
    "http_latency_seconds": ("响应时间", "HTTP latency", "s"),
}
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "database": ("database_size_bytes", "connections_pct", "xid_age_pct", "cache_hit_pct"),
    "host": ("fs_used_pct", "memory_available_pct", "load_per_cpu"),
    "endpoint": ("http_latency_seconds",),
}
PER_PATH_METRICS = ("fs_used_pct",)


def metric_base(metric: str) -> str:
    """'fs_used_pct:/data' → 'fs_used_pct'."""
    return metric.split(":", 1)[0]


def metric_label(metric: str) -> tuple[str, str, str]:
    """(中文, English, unit) of a stored metric name, the path of a per-path metric appended."""
    zh, en, unit = KEY_METRICS[metric_base(metric)]
    suffix = metric.split(":", 1)[1] if ":" in metric else ""
    return (f"{zh} {suffix}", f"{en} {suffix}", unit) if suffix else (zh, en, unit)


def trend_metrics(kind: str, paths: Sequence[str] = ()) -> list[str]:
    """The stored metric names worth a trend line for a target of
    ``kind`` (paths: its disk paths)."""
    names = []
    for name in KIND_METRICS.get(kind, ()):
        names += [f"{name}:{p}" for p in paths] if name in PER_PATH_METRICS else [name]
    return names


LIGHTS: dict[str, dict[str, str]] = {
    "green": {"zh": "绿", "en": "Green", "fg": "#ffffff", "bg": "#1e8e3e", "row": "#e6f4ea"},
    "yellow": {"zh": "黄", "en": "Yellow", "fg": "#3c2f00", "bg": "#f9ab00", "row": "#fef7e0"},
    "red": {"zh": "红", "en": "Red", "fg": "#ffffff", "bg": "#d93025", "row": "#fce8e6"},
    "grey": {"zh": "无数据", "en": "No data", "fg": "#ffffff", "bg": "#80868b", "row": "#f1f3f4"},
}

SEVERITY_LABELS: dict[str, dict[str, str]] = {
    "critical": {"zh": "严重", "en": "critical", "fg": "#ffffff", "bg": "#d93025"},
    "warn": {"zh": "警告", "en": "warning", "fg": "#3c2f00", "bg": "#f9ab00"},
    "check_error": {"zh": "检查出错", "en": "check error", "fg": "#ffffff", "bg": "#9334e6"},
    "ok": {"zh": "正常", "en": "ok", "fg": "#ffffff", "bg": "#1e8e3e"},
}

ACTION_LABELS = {
    "opened": ("新发", "new"),
    "escalated": ("升级", "escalated"),
    "updated": ("持续", "ongoing"),
    "resolved": ("已恢复", "resolved"),
}
KIND_LABELS = {
    "database": ("数据库", "database"),
    "host": ("主机", "host"),
    "log": ("日志", "log"),
    "endpoint": ("应用接口", "endpoint"),
    "system": ("系统", "system"),
}


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class SystemInfo:
    """A system as the report names it, with the targets the inventory lists for it."""

    id: str
    name: str
    name_en: str
    owner: str | None = None
    targets: tuple[tuple[str, str], ...] = ()  # (kind, target id)


@dataclass(frozen=True)
class ReportData:
    hospital: str
    timezone: str
    run_id: str
    generated_at: datetime
    systems: Sequence[SystemInfo]
    findings: Sequence[FindingRecord]
    open_incidents: Sequence[IncidentRecord] = ()
    changes: Sequence[
        Mapping[str, Any]
    ] = ()  # this run's incident changes (action, incident_id, …)
    samples: Sequence[MetricSample] = ()  # metric samples of the trend window
    logical_date: datetime | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    historical: bool = False  # a backfill / late run: live checks show the present, not that day
    inspection_run_id: int | None = None


# --------------------------------------------------------------------------- view model


@dataclass
class ProblemGroup:
    """One kind of problem in a system: the same check at the same
    severity on one or more targets."""

    severity: str
    check_id: str
    example: FindingRecord
    targets: list[str]

    def target_text(self, shown: int = 3) -> str:
        more = len(self.targets) - shown
        names = ", ".join(self.targets[:shown])
        return f"{names} 等 {len(self.targets)} 个 (+{more} more)" if more > 0 else names


@dataclass
class SystemSummary:
    info: SystemInfo
    counts: Counter[str]
    light: str
    targets: int
    top: list[ProblemGroup]


@dataclass
class TargetSection:
    kind: str
    target_id: str
    problems: list[FindingRecord]
    ok: list[FindingRecord]


@dataclass
class Trend:
    target_id: str
    metric: str
    days: list[date]
    values: list[float | None]

    @property
    def known(self) -> list[float]:
        return [v for v in self.values if v is not None]


@dataclass
class View:
    data: ReportData
    tz: ZoneInfo
    summaries: list[SystemSummary]
    sections: dict[str, list[TargetSection]]
    totals: Counter[str]
    light: str
    trends: list[Trend] = field(default_factory=list)
    trends_hidden: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    compact: bool = False  # all-ok targets summarised in one line per system
    summary_only: bool = False  # mail variant of a big report: no details, no trends


def severity_counts(findings: Iterable[FindingRecord]) -> Counter[str]:
    counts: Counter[str] = Counter({s: 0 for s in SEVERITY_LABELS})
    counts.update(f.severity for f in findings)
    return counts


def light_for(counts: Mapping[str, int]) -> str:
    """红 any critical, 黄 any warning or check error, 绿 all ok, grey when nothing was checked."""
    if counts.get("critical", 0):
        return "red"
    if counts.get("warn", 0) or counts.get("check_error", 0):
        return "yellow"
    return "green" if counts.get("ok", 0) else "grey"


def _worst_first(findings: Iterable[FindingRecord]) -> list[FindingRecord]:
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.target_id, f.check_id))


def _by_system(data: ReportData) -> dict[str, list[FindingRecord]]:
    grouped: dict[str, list[FindingRecord]] = defaultdict(list)
    for f in data.findings:
        grouped[f.system_id or ""].append(f)
    return grouped


def summarize_system(info: SystemInfo, findings: Sequence[FindingRecord]) -> SystemSummary:
    counts = severity_counts(findings)
    targets = {(f.target_kind, f.target_id) for f in findings} | set(info.targets)
    return SystemSummary(
        info, counts, light_for(counts), len(targets), problem_groups(findings)[:3]
    )


def problem_groups(findings: Iterable[FindingRecord]) -> list[ProblemGroup]:
    """Non-ok findings grouped by (severity, check): worst first, then the most widespread."""
    groups: dict[tuple[str, str], ProblemGroup] = {}
    for f in _worst_first(findings):
        if f.severity == "ok":
            continue
        group = groups.setdefault(
            (f.severity, f.check_id), ProblemGroup(f.severity, f.check_id, f, [])
        )
        group.targets.append(f.target_id)
    return sorted(
        groups.values(), key=lambda g: (-SEVERITY_RANK[g.severity], -len(g.targets), g.check_id)
    )


def target_sections(info: SystemInfo, findings: Sequence[FindingRecord]) -> list[TargetSection]:
    """One section per target: problems worst first, then the checks that passed."""
    order = {t: i for i, t in enumerate(info.targets)}
    grouped: dict[tuple[str, str], list[FindingRecord]] = defaultdict(list)
    for f in findings:
        grouped[(f.target_kind, f.target_id)].append(f)
    for target in info.targets:
        grouped.setdefault(target, [])
    keys = sorted(grouped, key=lambda k: (order.get(k, len(order)), k))
    return [_section(kind, tid, grouped[(kind, tid)]) for kind, tid in keys]


def _section(kind: str, target_id: str, findings: list[FindingRecord]) -> TargetSection:
    ranked = _worst_first(findings)
    problems = [f for f in ranked if f.severity != "ok"]
    ok = sorted((f for f in findings if f.severity == "ok"), key=lambda f: f.check_id)
    return TargetSection(kind, target_id, problems, ok)


def _unknown_system(system_id: str) -> SystemInfo:
    label = system_id or "未归属 unassigned"
    return SystemInfo(id=system_id, name=label, name_en=label)


def build_view(data: ReportData, *, summary_only: bool = False) -> View:
    grouped = _by_system(data)
    infos = list(data.systems) + [
        _unknown_system(s) for s in grouped if s not in {i.id for i in data.systems}
    ]
    summaries = [summarize_system(i, grouped.get(i.id, [])) for i in infos]
    totals = severity_counts(data.findings)
    trends, hidden = select_trends(build_trends(data), data, infos)
    return View(
        data=data,
        tz=ZoneInfo(data.timezone),
        summaries=summaries,
        sections={i.id: target_sections(i, grouped.get(i.id, [])) for i in infos},
        totals=totals,
        light=light_for(totals),
        trends=trends,
        trends_hidden=hidden,
        actions=Counter(str(c.get("action")) for c in data.changes),
        compact=sum(s.targets for s in summaries) > COMPACT_AFTER,
        summary_only=summary_only,
    )


# --------------------------------------------------------------------------- trends


def trend_end(data: ReportData) -> datetime:
    """The trend window ends at the inspected day (the logical date for a backfill)."""
    return data.logical_date if data.historical and data.logical_date else data.generated_at


def trend_days(end: datetime, tz: ZoneInfo, days: int = TREND_DAYS) -> list[date]:
    last = end.astimezone(tz).date()
    return [last - timedelta(days=n) for n in range(days - 1, -1, -1)]


def build_trends(data: ReportData) -> list[Trend]:
    """Last value per day and (target, key metric), for the TREND_DAYS
    days ending at the report day."""
    tz = ZoneInfo(data.timezone)
    days = trend_days(trend_end(data), tz)
    daily: dict[tuple[str, str], dict[date, tuple[datetime, float]]] = defaultdict(dict)
    for s in data.samples:
        if metric_base(s.metric) not in KEY_METRICS:
            continue
        day = s.observed_at.astimezone(tz).date()
        kept = daily[(s.target_id, s.metric)].get(day)
        if day in days and (kept is None or s.observed_at >= kept[0]):
            daily[(s.target_id, s.metric)][day] = (s.observed_at, s.value)
    keys = [k for k in daily if daily[k]]
    return [
        Trend(t, m, days, [daily[(t, m)][d][1] if d in daily[(t, m)] else None for d in days])
        for t, m in keys
    ]


def select_trends(
    trends: list[Trend], data: ReportData, infos: Sequence[SystemInfo], limit: int = MAX_TREND_ROWS
) -> tuple[list[Trend], int]:
    """Trends in inventory order; beyond ``limit`` rows, keep targets with problems, then the
    biggest relative movers. Returns (shown, number left out)."""
    position = {tid: i for i, tid in enumerate(t for info in infos for _, t in info.targets)}
    order = list(KEY_METRICS)

    def place(t: Trend) -> tuple[int, str, int, str]:
        return (
            position.get(t.target_id, len(position)),
            t.target_id,
            order.index(metric_base(t.metric)),
            t.metric,
        )

    if len(trends) <= limit:
        return sorted(trends, key=place), 0
    troubled = {f.target_id for f in data.findings if f.severity != "ok"}
    ranked = sorted(trends, key=lambda t: (t.target_id not in troubled, -_movement(t)))
    return sorted(ranked[:limit], key=place), len(trends) - limit


def _movement(trend: Trend) -> float:
    known = trend.known
    if len(known) < 2:
        return 0.0
    base = max(abs(known[0]), 1e-9)
    return abs(known[-1] - known[0]) / base


def sparkline(values: Sequence[float | None]) -> str:
    """▁▂▃▄▅▆▇█ per value (· for a day without a sample); flat series sit in the middle."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append("·")
        else:
            out.append(SPARK[3] if span == 0 else SPARK[round((v - low) / span * (len(SPARK) - 1))])
    return "".join(out)


# --------------------------------------------------------------------------- formatting


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "bytes":
        return fmt_bytes(value)
    if value and abs(value) < 0.01:
        return f"<0.01{unit if unit in ('%', 's') else ''}"
    text = f"{value:,.0f}" if abs(value) >= 1000 or float(value).is_integer() else f"{value:.3g}"
    return f"{text}{unit if unit in ('%', 's') else ''}"


def fmt_bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def finding_value(f: FindingRecord) -> str:
    if f.value_text:
        return f.value_text
    return fmt_value(f.value)


def breakable(text: str) -> Any:
    """Escaped text with line-break opportunities (<wbr>) after '.', ':',
    '/' and '_' (long check ids)."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"([.:/_])", r"\1<wbr>", str(escape(text))))


def fmt_time(moment: datetime | None, tz: ZoneInfo, with_seconds: bool = False) -> str:
    from hisops.report.timefmt import fmt

    return fmt(moment, tz, seconds=with_seconds)


def age_text(since: datetime, now: datetime) -> str:
    """'3天4小时 (3d 4h)'; under an hour in minutes."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时 ({days}d {hours}h)"
    if hours:
        return f"{hours}小时{mins}分 ({hours}h {mins}m)"
    return f"{mins}分钟 ({mins} min)"


def change_text(trend: Trend, unit: str) -> str:
    known = trend.known
    if len(known) < 2:
        return "—"
    delta = known[-1] - known[0]
    sign = "+" if delta > 0 else ("−" if delta < 0 else "±")
    return f"{sign}{fmt_value(abs(delta), unit)}"


def report_day(data: ReportData) -> date:
    """The day the report is for: the logical date (scheduled/backfill) or the run day (ad hoc)."""
    moment = data.logical_date or data.generated_at
    return moment.astimezone(ZoneInfo(data.timezone)).date()


# --------------------------------------------------------------------------- rendering


def jinja_environment():
    """The Jinja2 environment of every hisops report template (``hisops/report/templates``):
    HTML autoescaped, undefined names an error, block tags trimmed."""
    import jinja2  # heavy-ish: only when a report is rendered, never at DAG parse time

    return jinja2.Environment(
        loader=jinja2.PackageLoader("hisops.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _environment():
    env = jinja_environment()
    env.filters.update(value=finding_value, time=fmt_time, num=fmt_value, wbr=breakable)
    env.globals.update(
        LIGHTS=LIGHTS,
        SEV=SEVERITY_LABELS,
        ACTIONS=ACTION_LABELS,
        KINDS=KIND_LABELS,
        metric_label=metric_label,
        PRESENT_STATE=PRESENT_STATE,
        sparkline=sparkline,
        MAIL_ROWS=MAIL_ROWS,
        age_text=age_text,
        change_text=change_text,
    )
    return env


def render_report(data: ReportData, *, summary_only: bool = False) -> str:
    """The report as one HTML document (inline CSS, no scripts).

    ``summary_only``: the mail variant of a big report — header, overview, traffic lights and
    incidents, without the per-target details and trends (the full page goes as an attachment).
    """
    view = build_view(data, summary_only=summary_only)
    template = _environment().get_template("inspection_report.html.j2")
    return template.render(v=view, d=data, day=report_day(data))


def subject(data: ReportData) -> str:
    """Mail subject: hospital, day, overall light and counts (Chinese first)."""
    counts = severity_counts(data.findings)
    light = LIGHTS[light_for(counts)]
    tag = "补录 backfill · " if data.historical else ""
    return (
        f"{tag}巡检报告 Inspection report {report_day(data):%Y-%m-%d} · {data.hospital} · "
        f"{light['zh']} {light['en']} · 严重 {counts['critical']} / 警告 {counts['warn']} / "
        f"检查出错 {counts['check_error']}"
    )


def summary_text(lines: list[str], path: str | Path | None) -> str:
    """A text summary: its lines, then the saved page's path (``REPORT_FILE``) when there is one."""
    return "\n".join([*lines, f"{REPORT_FILE}: {path}"] if path else lines)


def text_summary(data: ReportData, report_path: str | None = None) -> str:
    """Plain-text version (chat robots, the text/plain part): lights per
    system and the top problems."""
    view = build_view(data)
    lines = [subject(data)]
    if data.historical:
        lines.append(f"注意 Note: {PRESENT_STATE}")
    for s in view.summaries:
        light = LIGHTS[s.light]
        lines.append(
            f"[{light['zh']} {light['en']}] {s.info.name} {s.info.name_en}: 严重 critical "
            f"{s.counts['critical']}, 警告 warn {s.counts['warn']}, 检查出错 check error "
            f"{s.counts['check_error']}, 正常 ok {s.counts['ok']}"
        )
        lines += [
            f"  - {g.target_text()} {g.check_id}: {g.example.message_zh} ({g.example.message_en})"
            for g in s.top
        ]
    lines.append(f"未关闭事件 open incidents: {len(data.open_incidents)}")
    return summary_text(lines, report_path)


# --------------------------------------------------------------------------- saving


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def report_filename(run_id: str) -> str:
    """inspection-<run id>.html with the run id made file-name safe (':' '+' '/' → '-')."""
    return f"inspection-{_UNSAFE.sub('-', run_id).strip('-.') or 'run'}.html"


def save_report(html: str, reports_dir: Path, day: date, run_id: str) -> Path:
    """Write under reports_dir/<YYYY-MM-DD>/ (dir 0700, file 0600), atomically; returns the path."""
    path = Path(reports_dir) / day.isoformat() / report_filename(run_id)
    write_private(path, html.encode("utf-8"))
    return path
