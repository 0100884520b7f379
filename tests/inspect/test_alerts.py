"""The inspection's decisions without Airflow: which systems, who is told what, delivery rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hisops.inspect import alerts, service

REPO = Path(__file__).resolve().parents[2]


def test_system_selection():
    from hisops.inventory.loader import load_inventory

    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    assert service.select_systems(inv, []) == ["outpatient", "inpatient", "emr"]
    assert service.select_systems(inv, ["emr", "outpatient"]) == ["outpatient", "emr"]
    with pytest.raises(ValueError, match="unknown system id"):
        service.select_systems(inv, ["nope"])


def test_report_channels_email_always_chat_only_for_problems():
    from hisops.notify import Channel

    mail = Channel("主管", "email", "mailto://x@y.z", "warn")
    robot = Channel("值班群", "wecom", "wecombot://k/", "critical")
    assert [c.name for c in alerts.report_channels([mail, robot], "ok")] == ["主管"]
    assert alerts.report_channels([mail, robot], "ok")[0].min_severity == "ok"
    assert [c.name for c in alerts.report_channels([mail, robot], "warn")] == ["主管"]
    assert [c.name for c in alerts.report_channels([mail, robot], "critical")] == ["主管", "值班群"]


def test_incident_alert_is_bounded_and_chinese_first():
    changes = [
        {
            "action": "opened" if i % 2 else "escalated",
            "incident_id": i,
            "severity": "warn",
            "previous_severity": "check_error",
            "target_id": f"db{i}",
            "check_id": "db.locks",
            "title_zh": "锁等待",
            "title_en": "lock wait",
        }
        for i in range(alerts.ALERT_LINES + 5)
    ]
    title, body = alerts.incident_message(changes, "测试医院")
    assert (
        title == f"巡检告警 Inspection alert · 测试医院 · 新发 new {len(changes) // 2} / "
        f"升级 escalated {len(changes) - len(changes) // 2}"
    )
    assert body.count("\n[") == alerts.ALERT_LINES - 1 and "另有 5 项" in body
    assert "[升级 ESCALATED (from check_error)] #0 warn db0 db.locks: 锁等待 (lock wait)" in body


def test_delivery_failure_rules():
    from hisops.notify import ChannelOutcome, SendResult

    def result(*statuses: str) -> SendResult:
        return SendResult(
            "t",
            "warn",
            tuple(ChannelOutcome(f"c{i}", "email", s, "x") for i, s in enumerate(statuses)),
        )

    alerts.require_delivery(
        result("sent", "failed"), "report"
    )  # one supervisor got it: a warning only
    alerts.require_delivery(
        result("skipped"), "report"
    )  # nobody wanted it (severity below min_severity)
    alerts.require_delivery(result(), "report")  # no channel selected
    with pytest.raises(RuntimeError, match="未能通知主管"):
        alerts.require_delivery(result("failed", "skipped"), "report")


def test_alert_severity_pages_a_check_error_like_a_warning():
    assert alerts.alert_severity([]) == "ok"
    assert alerts.alert_severity(["ok", "check_error"]) == "warn"
    assert alerts.alert_severity(["check_error", "warn", "critical"]) == "critical"
    with pytest.raises(ValueError, match="unknown severity"):
        alerts.alert_severity(["fatal"])


def test_configured_channels_none_usable_fails_naming_the_connections():
    from types import SimpleNamespace

    from hisops.notify import Channel

    configured = [SimpleNamespace(conn_id="smtp_a"), SimpleNamespace(conn_id="bot_b")]
    alerts.require_channels([], [])  # nothing configured: nothing to tell anybody through
    alerts.require_channels(configured, [Channel("主管", "email", "mailto://x@y.z", "warn")])
    with pytest.raises(RuntimeError, match="通知渠道均不可用.*smtp_a, bot_b"):
        alerts.require_channels(configured, [])


def test_system_label_names_the_system_or_falls_back_to_its_id():
    from hisops.inventory.loader import load_inventory

    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    s = inv.systems[0]
    assert service.system_label(inv, s.id) == f"{s.name} {s.name_en} ({s.id})"
    assert service.system_label(inv, "gone") == "gone"


def test_run_of_the_work_orders():
    plan = [
        {"system_id": "a", "inspection_run_id": 7, "historical": True, "fold_incidents": False},
        {"system_id": "b", "inspection_run_id": 7, "historical": True, "fold_incidents": False},
    ]
    assert service.run_of(plan) == {
        "inspection_run_id": 7,
        "historical": True,
        "systems": ["a", "b"],
    }
    with pytest.raises(ValueError, match="empty plan"):
        service.run_of([])
