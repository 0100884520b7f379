"""巡检报告 rendering from constructed FindingRecords: safe, mail-ready,
Chinese first, numbers from input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from hisops.catalog.records import FindingRecord, IncidentRecord, MetricSample
from hisops.report import (
    PRESENT_STATE,
    ReportData,
    SystemInfo,
    render_report,
    save_report,
    subject,
    text_summary,
)
from hisops.report.render import (
    age_text,
    build_trends,
    build_view,
    light_for,
    metric_label,
    report_filename,
    sparkline,
    trend_metrics,
)

NOW = datetime(2026, 3, 2, 23, 5, tzinfo=UTC)  # 2026-03-03 07:05 in Asia/Shanghai
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def f(
    check: str, target: str, severity: str, system: str = "outpatient", kind: str = "database", **kw
) -> FindingRecord:
    return FindingRecord(
        check,
        kind,
        target,
        severity,
        kw.pop("zh", f"{check} 中文"),
        kw.pop("en", f"{check} en"),
        system_id=system,
        observed_at=NOW,
        **kw,
    )


SYSTEMS = [
    SystemInfo(
        "outpatient",
        "门诊系统",
        "Outpatient",
        "信息科",
        (("database", "his_op"), ("host", "app-01")),
    ),
    SystemInfo("inpatient", "住院系统", "Inpatient", None, (("database", "his_ip"),)),
    SystemInfo("emr", "病案管理系统", "Medical records", None, (("database", "his_emr"),)),
]
FINDINGS = [
    f(
        "db.connections",
        "his_op",
        "warn",
        value=86,
        value_text="86%",
        threshold="warn ≥ 80%, critical ≥ 95%",
        zh=f"连接数 86% {EVIL}",
        en=f"connections 86% {EVIL}",
        suggestion_zh="检查连接池 <b>now</b>",
        suggestion_en="check the pool",
    ),
    f(
        "db.backup_age",
        "his_op",
        "critical",
        value=61,
        value_text="61 h",
        zh="备份过旧",
        en="backup too old",
    ),
    f("db.cache_hit", "his_op", "ok", value=99.7),
    f("host.fs_used", "app-01", "ok", kind="host", value=40),
    f("host.reachable", "app-01", "ok", kind="host"),
    f("database.reachable", "his_ip", "ok", system="inpatient"),
    f(
        "db.vacuum_age",
        "his_ip",
        "check_error",
        system="inpatient",
        zh="检查未能完成",
        en="check could not run",
    ),
    f("database.reachable", "his_emr", "ok", system="emr"),
]


def incident(i: int, severity: str, opened_days: float, title: str = "问题") -> IncidentRecord:
    opened = NOW - timedelta(days=opened_days)
    return IncidentRecord(
        i,
        "db.backup_age",
        "his_op",
        "outpatient",
        severity,
        "open",
        title,
        "problem",
        opened,
        None,
        None,
        None,
        NOW,
        3,
        None,
        None,
    )


def data(**kw) -> ReportData:
    base = dict(
        hospital="测试医院 <Test & Co>",
        timezone="Asia/Shanghai",
        run_id="scheduled__2026-03-02T23:00:00+00:00",
        generated_at=NOW,
        systems=SYSTEMS,
        findings=FINDINGS,
        open_incidents=[incident(7, "critical", 2.2, title=f"备份 {EVIL}")],
        changes=[
            {
                "action": "opened",
                "incident_id": 8,
                "check_id": "db.connections",
                "target_id": "his_op",
                "severity": "warn",
                "title_zh": "连接数",
                "title_en": "connections",
            }
        ],
        logical_date=NOW - timedelta(minutes=5),
        period_start=NOW - timedelta(days=1, minutes=5),
        period_end=NOW - timedelta(minutes=5),
        inspection_run_id=42,
    )
    base.update(kw)
    return ReportData(**base)


@pytest.fixture(scope="module")
def html() -> str:
    return render_report(data())


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_untrusted_text_is_escaped_not_executed(html):
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "检查连接池 &lt;b&gt;now&lt;/b&gt;" in html
    assert "测试医院 &lt;Test &amp; Co&gt;" in html


def test_mail_safe_markup_inline_css_only(html):
    found = tags(html)
    names = {t for t, _ in found}
    assert not names & {"script", "style", "link", "iframe", "object", "img", "form", "input"}
    assert not any(k.startswith("on") for _, attrs in found for k in attrs)
    assert not any(
        "class" in attrs for _, attrs in found
    )  # mail clients drop <style>: no classes to style
    styled = [t for t, attrs in found if t in {"table", "td", "th"} and "style" in attrs]
    assert len(styled) == sum(1 for t, _ in found if t in {"table", "td", "th"})
    assert "javascript:" not in html.lower()


def test_chinese_first_with_english_alongside(html):
    assert '<html lang="zh-CN">' in html
    for zh, en in [
        ("每日巡检报告", "Daily inspection report"),
        ("系统红绿灯", "Traffic lights per system"),
        ("检查详情", "Details per target"),
        ("七日趋势", "7-day trends"),
        ("未关闭事件", "Open incidents"),
        ("处理建议", "What to do"),
        ("测量值", "Value"),
        ("阈值", "Threshold"),
    ]:
        assert zh in html and en in html
        assert html.index(zh) < html.index(en), f"{zh} must come before {en}"


def test_header_has_hospital_date_period_and_generated_at(html):
    assert "巡检日期" in html and "2026-03-03" in html  # the day in Asia/Shanghai, not UTC
    assert "2026-03-02 07:00 — 2026-03-03 07:00" in html
    assert "2026-03-03 07:05:00" in html


def test_counts_and_lights_are_computed_from_the_input():
    view = build_view(data())
    by_id = {s.info.id: s for s in view.summaries}
    assert (by_id["outpatient"].light, by_id["inpatient"].light, by_id["emr"].light) == (
        "red",
        "yellow",
        "green",
    )
    assert dict(by_id["outpatient"].counts) == {"critical": 1, "warn": 1, "check_error": 0, "ok": 3}
    assert by_id["outpatient"].targets == 2
    assert dict(view.totals) == {"critical": 1, "warn": 1, "check_error": 1, "ok": 5}
    assert view.light == "red"
    assert subject(data()).endswith("红 Red · 严重 1 / 警告 1 / 检查出错 1")


def test_rendered_counts_match_the_input(html):
    rows = re.findall(
        r"<tr style=\"background:#[0-9a-f]+;\">\s*<td[^>]*>● (.)<br>.*?</tr>", html, re.S
    )
    assert rows == ["红", "黄", "绿"]
    overview = re.findall(r'font-size:22px;font-weight:bold;color:#[0-9a-f]+;">(\d+)</div>', html)
    assert overview == [
        "4",
        "1",
        "1",
        "1",
        "5",
        "1",
        "0",
        "1",
    ]  # targets, crit, warn, err, ok, new, resolved, open


def test_problem_rows_carry_value_threshold_message_and_suggestion(html):
    row = html[html.index("db.<wbr>connections</td>") :]
    row = row[: row.index("</tr>")]
    for part in (
        "86%",
        "warn ≥ 80%, critical ≥ 95%",
        "连接数 86%",
        "connections 86%",
        "检查连接池",
        "check the pool",
    ):
        assert part in row


def test_open_incident_age_and_changes(html):
    assert "2天4小时 (2d 4h)" in html
    assert age_text(NOW - timedelta(minutes=90), NOW) == "1小时30分 (1h 30m)"
    assert "新发 <span" in html and "#8" in html


def test_break_opportunities_keep_escaping():
    from hisops.report.render import breakable

    assert str(breakable("host.fs_used:/data")) == "host.<wbr>fs_<wbr>used:<wbr>/<wbr>data"
    assert str(breakable("<b>.x")) == "&lt;b&gt;.<wbr>x"


def test_light_rules():
    assert light_for({"ok": 3}) == "green"
    assert light_for({"ok": 3, "check_error": 1}) == "yellow"
    assert light_for({"warn": 1, "critical": 1}) == "red"
    assert light_for({}) == "grey"


def test_target_without_findings_and_unknown_system_are_shown():
    extra = f("host.load", "stray-host", "warn", system="unlisted", kind="host")
    kept = [x for x in FINDINGS if x.system_id != "emr"]
    view = build_view(
        data(
            findings=[*kept, extra],
            systems=[
                *SYSTEMS[:2],
                SystemInfo("emr", "病案管理系统", "EMR", None, (("database", "x"),)),
            ],
        )
    )
    emr = {s.info.id: s for s in view.summaries}["emr"]
    assert emr.light == "grey" and [s.target_id for s in view.sections["emr"]] == ["x"]
    assert "unlisted" in {s.info.id for s in view.summaries}


def test_seven_day_trends_last_value_per_day_and_gaps():
    samples = [
        MetricSample("his_op", "connections_pct", 10 + d, NOW - timedelta(days=d))
        for d in range(9)
        if d != 2
    ]
    samples.append(
        MetricSample("his_op", "connections_pct", 99, NOW - timedelta(days=1, hours=3))
    )  # earlier that day
    samples.append(MetricSample("his_op", "not_a_key_metric", 1, NOW))
    [trend] = build_trends(data(samples=samples))
    assert trend.metric == "connections_pct" and len(trend.values) == 7
    assert trend.values == [16, 15, 14, 13, None, 11, 10]
    assert sparkline(trend.values) == "█▇▆▅·▂▁"
    html = render_report(data(samples=samples))
    assert "█▇▆▅·▂▁" in html and "连接使用率" in html


def test_per_path_metrics_trend_with_their_path():
    assert trend_metrics("host", ["/", "/data"]) == [
        "fs_used_pct:/",
        "fs_used_pct:/data",
        "memory_available_pct",
        "load_per_cpu",
    ]
    assert metric_label("fs_used_pct:/data") == ("磁盘使用率 /data", "filesystem used /data", "%")
    samples = [
        MetricSample("app-01", "fs_used_pct:/data", 70 + d, NOW - timedelta(days=d))
        for d in range(3)
    ]
    [trend] = build_trends(data(samples=samples))
    assert trend.metric == "fs_used_pct:/data" and trend.known == [72, 71, 70]
    assert "磁盘使用率 /data" in render_report(data(samples=samples))


def test_backfill_is_labelled_present_state():
    old = NOW - timedelta(days=10)
    d = data(
        historical=True, logical_date=old, period_start=old - timedelta(days=1), period_end=old
    )
    html = render_report(d)
    assert PRESENT_STATE in html and "补录巡检" in html
    assert "巡检日期 <span" in html and old.astimezone().strftime("%Y-") in html
    assert subject(d).startswith("补录 backfill")
    assert PRESENT_STATE in text_summary(d)
    assert PRESENT_STATE not in render_report(data())


def test_text_summary_lists_lights_and_top_problems():
    text = text_summary(data(), "/r/x.html")
    assert "[红 Red] 门诊系统 Outpatient" in text and "[绿 Green] 病案管理系统" in text
    assert "his_op db.backup_age: 备份过旧 (backup too old)" in text
    assert text.endswith("报告文件 report file: /r/x.html")


def test_saved_report_is_private(tmp_path):
    path = save_report(
        "<html>x</html>", tmp_path / "reports", NOW.date(), "manual__2026-03-03T07:00:00+08:00"
    )
    assert path.name == "inspection-manual__2026-03-03T07-00-00-08-00.html"
    assert path.parent.name == "2026-03-02"
    assert (
        oct(path.stat().st_mode & 0o777) == "0o600"
        and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    )
    path.chmod(0o644)
    save_report(
        "<html>y</html>", tmp_path / "reports", NOW.date(), "manual__2026-03-03T07:00:00+08:00"
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600" and path.read_text() == "<html>y</html>"
    assert report_filename("../../etc/passwd") == "inspection-etc-passwd.html"


def _many_targets(n: int) -> ReportData:
    targets = tuple(("database", f"db{i:03d}") for i in range(n))
    findings = [
        f("db.connections", f"db{i:03d}", "warn" if i == 7 else "ok", system="big")
        for i in range(n)
    ]
    samples = [
        MetricSample(
            f"db{i:03d}", "connections_pct", 10 + (i == 3) * d * 10, NOW - timedelta(days=d)
        )
        for i in range(n)
        for d in range(3)
    ]
    return data(
        systems=[SystemInfo("big", "大系统", "Big", None, targets)],
        findings=findings,
        samples=samples,
        open_incidents=[],
        changes=[],
    )


def test_big_inventory_is_compact_and_trends_are_capped():
    from hisops.report.render import MAX_TREND_ROWS

    d = _many_targets(60)
    view = build_view(d)
    assert (
        view.compact
        and view.trends_hidden == 60 - MAX_TREND_ROWS
        and len(view.trends) == MAX_TREND_ROWS
    )
    shown = [t.target_id for t in view.trends]
    assert {"db003", "db007"} <= set(
        shown
    ) and "db059" not in shown  # the troubled target and the mover stay
    assert shown == sorted(shown)  # in inventory order
    html = render_report(d)
    assert "59 个目标全部正常" in html and "db000 (1)" in html
    assert html.count("db.<wbr>connections</td>") == 1  # only the problem gets a detail row
    assert f"另有 {60 - MAX_TREND_ROWS} 条趋势未列出" in html


def test_summary_only_variant_for_the_mail():
    html = render_report(_many_targets(60), summary_only=True)
    assert "系统红绿灯" in html and "未关闭事件" in html and "见附件" in html
    assert "、检查详情" not in html and "、七日趋势" not in html
    assert "二、未关闭事件" in html  # sections renumbered


def test_tiny_values_do_not_print_as_scientific_noise():
    from hisops.report.render import fmt_value

    assert (
        fmt_value(0.000483, "%") == "<0.01%"
        and fmt_value(0.0, "%") == "0%"
        and fmt_value(12.345, "%") == "12.3%"
    )
    assert fmt_value(5.5e9, "bytes") == "5.1 GB"


def test_mail_variant_lists_a_bounded_number_of_incidents():
    from hisops.report.render import MAIL_ROWS

    many = [incident(100 + i, "warn", 1) for i in range(MAIL_ROWS + 7)]
    d = data(open_incidents=many)
    last = f">#{100 + MAIL_ROWS + 6}</td>"
    assert last in render_report(d)
    mail = render_report(d, summary_only=True)
    assert last not in mail and f">#{100 + MAIL_ROWS - 1}</td>" in mail
    assert "另有 7 个较轻或较新的事件见附件" in mail


def test_main_problems_are_grouped_by_check():
    from hisops.report.render import problem_groups

    same = [
        f("db.backup_age", f"db{i}", "critical", zh="没有备份", en="no backup") for i in range(5)
    ]
    groups = problem_groups([*same, f("db.uptime", "db1", "warn"), f("db.locks", "db2", "ok")])
    assert [(g.severity, g.check_id, len(g.targets)) for g in groups] == [
        ("critical", "db.backup_age", 5),
        ("warn", "db.uptime", 1),
    ]
    assert groups[0].target_text() == "db0, db1, db2 等 5 个 (+2 more)"
    html = render_report(data(findings=same))
    assert "没有备份 <b>× 5</b>" in html
