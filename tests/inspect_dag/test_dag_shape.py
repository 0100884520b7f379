"""daily_inspection as the scheduler sees it: schedule from the inventory, wiring, pool, mapping, docs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hisops.airflow import inspection_tasks as t
from hisops.airflow.pools import POOLS

REPO = Path(__file__).resolve().parents[2]


def load(monkeypatch, inventory: Path | None = None):
    if inventory is not None:
        monkeypatch.setenv("HISOPS_INVENTORY", str(inventory))
    spec = importlib.util.spec_from_file_location(
        "daily_inspection_shape", REPO / "dags" / "daily_inspection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.daily_inspection()


@pytest.fixture
def dag(monkeypatch):
    return load(monkeypatch, REPO / "inventory" / "hospital.example.yaml")


def test_schedule_is_the_inventory_cron_in_the_inventory_timezone(dag):
    from airflow.sdk import CronTriggerTimetable

    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 7 * * *"
    assert str(dag.timetable.timezone) == "Asia/Shanghai"
    assert dag.catchup is False and dag.max_active_runs == 1


def test_a_changed_schedule_in_the_inventory_moves_the_dag(monkeypatch, tmp_path):
    text = (REPO / "inventory" / "hospital.example.yaml").read_text()
    changed = tmp_path / "inv.yaml"
    changed.write_text(text.replace('inspection: "0 7 * * *"', 'inspection: "30 6 * * 1-5"'))
    dag = load(monkeypatch, changed)
    assert dag.timetable.expression == "30 6 * * 1-5"


def test_wiring(dag):
    down = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    assert down == {
        "start": ["inspect_system", "report", "send_report"],
        "inspect_system": ["notify_incidents", "report"],
        "notify_incidents": [],
        "report": ["send_report"],
        "send_report": [],
    }


def test_one_mapped_task_per_system_in_the_inspection_pool(dag):
    task = dag.get_task("inspect_system")
    assert task.pool == "hisops_inspection" and "hisops_inspection" in POOLS
    assert task.map_index_template == "{{ system_label }}"
    assert type(task).__name__.endswith("MappedOperator")


def test_params_and_runbook(dag):
    assert dag.params["systems"] == []
    assert "失败时怎么办" in dag.doc_md and "当前状态，非历史" in dag.doc_md
    assert all(task.task_display_name != task.task_id for task in dag.tasks)  # Chinese-first names


def test_system_selection():
    from hisops.inventory.loader import load_inventory

    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    assert t.select_systems(inv, []) == ["outpatient", "inpatient", "emr"]
    assert t.select_systems(inv, ["emr", "outpatient"]) == ["outpatient", "emr"]
    with pytest.raises(ValueError, match="unknown system id"):
        t.select_systems(inv, ["nope"])


def test_report_channels_email_always_chat_only_for_problems():
    from hisops.notify import Channel

    mail = Channel("主管", "email", "mailto://x@y.z", "warn")
    robot = Channel("值班群", "wecom", "wecombot://k/", "critical")
    assert [c.name for c in t.report_channels([mail, robot], "ok")] == ["主管"]
    assert t.report_channels([mail, robot], "ok")[0].min_severity == "ok"
    assert [c.name for c in t.report_channels([mail, robot], "warn")] == ["主管"]
    assert [c.name for c in t.report_channels([mail, robot], "critical")] == ["主管", "值班群"]


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
        for i in range(t.ALERT_LINES + 5)
    ]
    title, body = t.incident_message(changes, "测试医院")
    assert (
        title
        == f"巡检告警 Inspection alert · 测试医院 · 新发 new {len(changes) // 2} / 升级 escalated {len(changes) - len(changes) // 2}"
    )
    assert body.count("\n[") == t.ALERT_LINES - 1 and "另有 5 项" in body
    assert "[升级 ESCALATED (from check_error)] #0 warn db0 db.locks: 锁等待 (lock wait)" in body


def test_delivery_failure_rules():
    from hisops.notify import ChannelOutcome, SendResult

    def result(*statuses: str) -> SendResult:
        return SendResult(
            "t",
            "warn",
            tuple(ChannelOutcome(f"c{i}", "email", s, "x") for i, s in enumerate(statuses)),
        )

    t._require_delivery(result("sent", "failed"), "report")  # one supervisor got it: a warning only
    t._require_delivery(
        result("skipped"), "report"
    )  # nobody wanted it (severity below min_severity)
    t._require_delivery(result(), "report")  # no channel selected
    with pytest.raises(RuntimeError, match="未能通知主管"):
        t._require_delivery(result("failed", "skipped"), "report")
