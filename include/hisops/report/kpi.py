"""运维考核月报 — the KPI report as one self-contained HTML page (inline CSS and SVG, no scripts).

Pure rendering of a :class:`hisops.kpi.figures.KpiReport`; the definitions of every figure are
in ``DEFINITIONS`` and printed in the page's footer.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hisops.kpi.charts import BLUE, ORANGE, Bar, Series, line_chart, pct_bars
from hisops.report.render import jinja_environment, summary_text

if TYPE_CHECKING:
    from hisops.kpi.figures import KpiReport

NO_DATA = "无数据 no data"

#: (figure, 中文定义, English definition) — the report's footer
DEFINITIONS: tuple[tuple[str, str, str], ...] = (
    (
        "可用率 Availability",
        "周期内每次巡检对数据库（可连接）、主机（可登录执行脚本）、应用接口（HTTP "
        "状态符合预期）的检查中，目标正常的比例；"
        "维护操作或变更正在处理该目标期间的检查不计入（已排除次数单列）。巡检为每日一次，"
        "是抽样可用率，不是连续监测。",
        "Share of the period's reachability checks (database connects, host runs the script, "
        "endpoint answers the expected HTTP status) that found the target up; checks taken while "
        "a maintenance operation or an approved change worked on that target are excluded "
        "(counted separately). Sampled at each inspection, not continuous.",
    ),
    (
        "MTTA 平均确认时间",
        "周期内新开事件从开立到有人确认（O&M 中心“确认”）的平均时间；只计已确认的事件。",
        "Mean time from an incident being opened to a person acknowledging it, over incidents "
        "opened in the period that were acknowledged.",
    ),
    (
        "MTTR 平均恢复时间",
        "周期内新开事件从开立到恢复（检查再次通过）的平均时间；只计已恢复的事件。",
        "Mean time from an incident being opened to its resolution (the check passing again), "
        "over incidents opened in the period that were resolved.",
    ),
    (
        "备份成功率 Backup success",
        "有已验证（恢复演练通过）逻辑备份的“数据库·天”数 ÷ "
        "计划备份的“数据库·天”数（清单中的数据库数 × 备份计划在周期内执行的天数）。",
        "Database-days with a verified (drill passed) logical backup ÷ scheduled database-days "
        "(databases in the inventory × days the backup schedule fires in the period).",
    ),
    (
        "演练成功率 Drill success",
        "周期内恢复演练（backup_verification）通过的次数 ÷ 演练总次数。",
        "Restore drills that passed ÷ all restore drills started in the period.",
    ),
    (
        "实测 RTO Measured RTO",
        "通过的恢复演练中，把备份恢复到临时库所用的时间（中位数、最大值，"
        "按日/周/月的平均与最大趋势）。",
        "Time a passing drill took to restore the backup into a scratch database (median, "
        "maximum; trend of average and maximum per day/week/month).",
    ),
    (
        "实测 RPO Measured RPO",
        "存在 PITR（pgBackRest 物理备份）层时：其恢复演练测得的数据丢失窗口（演练记录 "
        "details.rpo_seconds）；否则为“不可用”。"
        "逻辑备份层另列“最长无备份间隔”：相邻两次已验证逻辑备份完成时间的最大间隔，"
        "即该层最坏情况下的数据丢失。",
        "With a PITR tier (pgBackRest physical backups): the data-loss window its drills measured "
        "(details.rpo_seconds); otherwise 'not available'. For the logical tier, the longest time "
        "between two verified logical backups (its worst-case data loss) is listed separately.",
    ),
    (
        "巡检准时率 Inspection punctuality",
        "在 08:00（开诊前）之前完成（报告已生成）的每日巡检天数 ÷ "
        "巡检计划执行的天数；补录（backfill）不计。",
        "Days whose daily inspection finished (report written) before 08:00 local time ÷ days "
        "the inspection schedule fires in the period; backfills do not count.",
    ),
    (
        "变更成功率 Change success / 变更失败率 Change failure rate (DORA)",
        "周期内结束的已实施变更中，验证通过的比例；失败率 = 失败、已回退与回退失败之和 ÷ "
        "已实施变更。被拒绝或取消（未实施）的变更不计入。",
        "Of the changes applied that ended in the period, the share whose verification passed; "
        "failure rate = failed + reverted + failed revert ÷ applied. Refused or cancelled "
        "changes (never applied) are not counted.",
    ),
    (
        "恢复时间 Recovery time (DORA)",
        "已回退的变更，从验证失败到回退并再次验证通过的时间（平均、最大）。",
        "For reverted changes, the time from the failed verification to the revert verified again "
        "(mean, maximum).",
    ),
    (
        "人员工作量 Work per person",
        "可归属到个人的工作：确认事件次数（及其平均确认时间）、提交变更次数、审批变更次数。"
        "自动恢复的事件无法归属，不计入。",
        "Work attributable to a person: incidents acknowledged (and their mean time to "
        "acknowledge), changes requested, changes approved. Incidents that resolved themselves "
        "are not attributable.",
    ),
)


def fmt_duration(seconds: float | None) -> str:
    """'2小时5分 (2h 5m)', '45秒 (45 s)'; '—' for none."""
    if seconds is None:
        return "—"
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时 ({days}d {hours}h)"
    if hours:
        return f"{hours}小时{minutes}分 ({hours}h {minutes}m)"
    if minutes:
        return f"{minutes}分{secs}秒 ({minutes}m {secs}s)"
    return f"{seconds:.1f}秒 ({seconds:.1f} s)" if seconds < 10 else f"{secs}秒 ({secs} s)"


def fmt_clock(value: Any) -> str:
    """A local time of day (time, or the interval avg() of times gives) as HH:MM."""
    if value is None:
        return "—"
    if isinstance(value, timedelta):
        minutes = int(value.total_seconds() // 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


def fmt_time(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def charts(report: KpiReport) -> dict[str, str]:
    """The three inline SVG charts of the report."""
    avail = pct_bars(
        [Bar(f"{s.name} {s.name_en}", s.availability.pct) for s in report.systems],
        title="各系统可用率 Availability per system",
    )
    backups = pct_bars(
        [Bar(f"{s.name} {s.name_en}", s.backups.pct) for s in report.systems],
        good=99,
        fair=90,
        title="各系统备份成功率 Backup success per system",
    )
    trend = report.rto_trend
    rto = line_chart(
        [f"{p.bucket:%m-%d}" for p in trend],
        [
            Series("平均 average", BLUE, [p.rto_avg_s for p in trend]),
            Series("最大 maximum", ORANGE, [p.rto_max_s for p in trend]),
        ],
        title=f"实测 RTO 趋势 Measured RTO trend (每{_BUCKET_ZH[report.period.trend_bucket]})",
    )
    return {"availability": avail, "backups": backups, "rto": rto}


_BUCKET_ZH = {"day": "日 per day", "week": "周 per week", "month": "月 per month"}


def _pretty(value: Any) -> str:
    """Readable JSON (Chinese as is); the template escapes it."""
    import json

    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _environment():
    env = jinja_environment()
    env.filters.update(dur=fmt_duration, clock=fmt_clock, pretty=_pretty)
    env.globals.update(NO_DATA=NO_DATA, DEFINITIONS=DEFINITIONS, fmt_time=fmt_time)
    return env


def render_kpi_report(report: KpiReport) -> str:
    from markupsafe import Markup

    svg = {k: Markup(v) for k, v in charts(report).items()}  # built from escaped parts in charts.py
    return _environment().get_template("kpi_report.html.j2").render(r=report, svg=svg)


def kpi_subject(report: KpiReport) -> str:
    avail = report.availability.pct
    head = f"可用率 {avail:.2f}%" if avail is not None else "本期无数据 no data"
    return (
        f"运维考核月报 O&M KPI report {report.period.label} · {report.hospital} · {head} · "
        f"事件 incidents {report.incidents.opened}"
    )


def kpi_text(report: KpiReport, path: str | None = None) -> str:
    """Plain-text summary (text/plain part, chat robots)."""
    lines = [kpi_subject(report)]
    if not report.has_data:
        lines.append("本期目录库中没有任何记录 The catalog holds no record for this period.")
    lines += [
        f"可用率 availability: {report.availability.text()}",
        f"事件 incidents: {report.incidents.opened} (MTTA {fmt_duration(report.incidents.mtta_s)}, "
        f"MTTR {fmt_duration(report.incidents.mttr_s)})",
        f"备份成功率 backup success: {report.backups.text()}",
        f"演练成功率 drill success: {report.drills.text()}; RTO p50 "
        f"{fmt_duration(report.rto_p50_s)}",
        f"巡检准时率 inspection punctuality: {report.inspection.text()}",
        f"变更成功率 change success: {report.changes.success.text()}",
    ]
    return summary_text(lines, path)


def render_evidence_index(
    *,
    hospital: str,
    month: str,
    created: datetime,
    tz: str,
    items: list[Any],
    notes: list[str],
    requirements: dict[str, tuple[str, str]],
) -> str:
    """The evidence pack's index page: each 等保 clause with the files that
    evidence it, then every file."""
    by_req = {code: [i for i in items if code in i.requirements] for code in requirements}
    return (
        _environment()
        .get_template("evidence_index.html.j2")
        .render(
            hospital=hospital,
            month=month,
            created=fmt_time(created, tz),
            tz=tz,
            items=items,
            notes=notes,
            requirements=requirements,
            by_req=by_req,
        )
    )


CHANGE_STATES = {
    "requested": ("已申请", "requested"),
    "assessed": ("已评估", "assessed"),
    "backed_up": ("已备份", "backed up"),
    "approved": ("已批准", "approved"),
    "running": ("实施中", "running"),
    "completed": ("成功", "completed"),
    "pending_restart": ("已写入，待重启", "pending restart"),
    "rolled_back": ("失败，已回退", "failed, reverted"),
    "failed_revert": ("回退失败", "revert failed"),
    "assessment_failed": ("评估未通过", "assessment failed"),
    "refused": ("被拒绝", "refused"),
    "rejected": ("审批驳回", "rejected"),
    "cancelled": ("已取消", "cancelled"),
}


def render_change_page(*, hospital: str, tz: str, change: Any, steps: list[Any]) -> str:
    """The page of one change (the O&M centre's change record, also kept in the evidence pack)."""
    from hisops.change.results import STEPS_ZH

    def fmt(moment: datetime | None) -> str:
        return "—" if moment is None else fmt_time(moment, tz)

    return (
        _environment()
        .get_template("change_page.html.j2")
        .render(
            hospital=hospital,
            tz=tz,
            c=change,
            steps=steps,
            request=change.details.get("request", {}),
            STATES=CHANGE_STATES,
            STEPS=STEPS_ZH,
            fmt=fmt,
        )
    )
