"""运维考核月报: figures from a known month in a real catalog, the
empty period, the page, the mail."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hisops.kpi import period as P
from hisops.kpi.figures import Ratio, build_report
from hisops.kpi.service import run_kpi_report
from hisops.notify import Channel, build_apprise_url
from hisops.report.kpi import render_kpi_report
from hisops.runinfo import RunInfo

from tests.kpi.seed import TZ

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
NOVEMBER = P.month(2026, 11, TZ)
RUN = RunInfo(dag_id="kpi_report", run_id="manual__kpi", triggering_user="sysadmin")


def test_period_parsing():
    assert P.parse("2026-02", None, None, TZ, NOW).label == "2026-02"
    assert len(P.parse("2026-02", None, None, TZ, NOW).days()) == 28
    assert P.parse(None, None, None, TZ, NOW) == NOVEMBER  # default: the previous month (local)
    adhoc = P.parse(None, "2026-11-01", "2026-11-15", TZ, NOW)
    assert (adhoc.label, len(adhoc.days()), adhoc.monthly) == ("2026-11-01 – 2026-11-15", 15, False)
    assert adhoc.start.isoformat() == "2026-11-01T00:00:00+08:00"
    for bad, message in (
        (("2026-13", None, None), "month: '2026-13'"),
        ((None, "2026-11-01", None), "together"),
        ((None, "2026-11-05", "2026-11-01"), "before start"),
        (("2026-11", "2026-11-01", "x"), "not both"),
        ((None, "1.11.2026", "2026-11-30"), "start: '1.11.2026' is not a date"),
    ):
        with pytest.raises(P.PeriodError, match=re.escape(message)):
            P.parse(*bad, TZ, NOW)
    assert P.scheduled_days("0 1 * * *", NOVEMBER) == 30
    assert P.scheduled_days("0 1 * * 1", NOVEMBER) == 5  # Mondays of November 2026


def test_figures_of_a_known_month(seeded, inventory):
    r = build_report(seeded, inventory, NOVEMBER, NOW)
    by = {s.system_id: s for s in r.systems}
    assert [s.system_id for s in r.systems] == ["outpatient", "inpatient", "emr"]
    # availability: 3 outpatient targets × 29 days, 2 down; the sample
    # in the maintenance op excluded
    assert by["outpatient"].availability == Ratio(85, 87) and by["outpatient"].excluded_checks == 1
    assert by["inpatient"].availability == Ratio(29, 29)
    assert (
        by["emr"].availability.value is None and by["emr"].availability.text() == "无数据 no data"
    )
    assert r.availability == Ratio(114, 116) and r.excluded_checks == 1
    assert [(t.target_id, t.down, t.checks) for t in r.down_targets] == [("his_outpatient", 2, 29)]
    # incidents opened in November: MTTA over the two acknowledged, MTTR over all three
    assert (r.incidents.opened, r.incidents.critical, r.incidents.acknowledged) == (3, 1, 2)
    assert r.incidents.mtta_s == pytest.approx(1200) and r.incidents.mttr_s == pytest.approx(36000)
    assert by["outpatient"].mtta_s == pytest.approx(1200) and by["inpatient"].mtta_s is None
    # backups: verified database-days / (databases × scheduled days)
    assert by["outpatient"].backups == Ratio(28, 30) and by["inpatient"].backups == Ratio(30, 30)
    assert by["emr"].backups == Ratio(0, 30) and r.backups == Ratio(58, 90)
    assert (r.backups_attempted, r.backups_failed) == (60, 1)
    # drills of days 1..10: 8 passed (restore 10 + day s; no backup on the
    # 8th) and one failed (the 7th)
    assert r.drills == Ratio(8, 9) and r.rto_p50_s == pytest.approx(14.5) and r.rto_max_s == 20
    assert [p.rto_avg_s for p in r.rto_trend] == [11, 12, 13, 14, 15, 16, 19, 20]  # daily buckets
    assert not r.pitr.tier  # no physical backups: RPO "not available"
    gaps = {g.database_id: g.max_gap_s for g in r.logical_gaps}
    assert gaps["his_outpatient"] == pytest.approx(
        3 * 86400
    )  # verified on the 6th, next on the 9th
    # inspections: 29 days run (the 15th only backfilled), 27 before 08:00
    assert r.inspection == Ratio(27, 30) and r.inspection_missed_days == 1
    assert r.inspection_row.latest_finish.strftime("%H:%M") == "08:30"
    # changes (DORA): the cancelled one was never applied
    assert r.changes.success == Ratio(1, 2) and r.changes.failure_rate == Ratio(1, 2)
    assert r.changes.row.cancelled == 1 and r.changes.row.recovery_avg_s == pytest.approx(900)
    work = {o.actor: o for o in r.operators}
    assert (work["operator1"].acknowledgements, work["operator1"].changes_requested) == (1, 2)
    assert (
        work["operator2"].mtta_s == pytest.approx(1800) and work["sysadmin"].changes_approved == 2
    )
    assert r.has_data


def test_a_period_without_data_says_so(catalog, inventory):
    r = build_report(catalog, inventory, P.month(2025, 3, TZ), NOW)
    assert not r.has_data
    figures = (
        r.availability,
        r.drills,
        r.changes.success,
        r.changes.failure_rate,
        r.backups,
        r.inspection,
        *(s.backups for s in r.systems),
    )
    assert all(
        x.value is None and x.text() == "无数据 no data" for x in figures
    )  # not 0 %: nothing ran
    html = render_kpi_report(r)
    assert (
        "本期无数据 No data for this period" in html
        and "NaN" not in html
        and "ZeroDivision" not in html
    )


def test_page_is_self_contained_chinese_first_with_svg_and_definitions(seeded, inventory):
    html = render_kpi_report(build_report(seeded, inventory, NOVEMBER, NOW))
    assert html.count("<svg") == 3 and "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from anywhere
    assert html.index("运维考核月报") < html.index("O&amp;M KPI report")
    assert "97.70%" in html and "(85/87)" in html  # outpatient availability
    assert "PITR（时间点恢复）层：<b>不可用</b>" in html
    for name in (
        "可用率 Availability",
        "MTTA",
        "MTTR",
        "备份成功率",
        "演练成功率",
        "实测 RTO",
        "实测 RPO",
        "巡检准时率",
        "变更成功率",
        "恢复时间",
        "人员工作量",
    ):
        assert name in html.split("指标定义")[1], name


def test_service_saves_records_audits_and_mails(seeded, inventory, mailbox, tmp_path):
    inv = inventory.model_copy(
        update={"reports": inventory.reports.model_copy(update={"path": str(tmp_path)})}
    )
    url = build_apprise_url(
        "email",
        host=mailbox.host,
        port=mailbox.port,
        login=None,
        password=None,
        extra={"disable_ssl": True, "disable_tls": True, "from_email": "hisops@hospital.example"},
        to=["supervisor@hospital.example"],
    )
    channels = [
        Channel("主管", "email", url, "critical"),
        Channel("群", "webhook", "json://127.0.0.1:9/x", "warn"),
    ]

    outcome = run_kpi_report(seeded, inv, NOVEMBER, RUN, channels, now=NOW)

    path = tmp_path / "kpi" / "kpi-2026-11.html"
    assert outcome.path == str(path) and oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    (stored,) = seeded.kpi_reports()
    assert (stored.label, stored.sha256, stored.summary["availability_pct"]) == (
        "2026-11",
        outcome.sha256,
        98.28,
    )
    assert outcome.sent == [
        "主管"
    ]  # e-mail whatever its min_severity; chat robots are not sent reports
    (mail,) = mailbox.messages
    assert str(mail["subject"]).startswith("运维考核月报 O&M KPI report 2026-11")
    assert "<svg" in mail.get_body(("html",)).get_content()
    event = next(e for e in seeded.audit_events() if e.action == "kpi.report")
    assert (event.actor, event.result, event.details["report_id"]) == (
        "sysadmin",
        "success",
        outcome.report_id,
    )
