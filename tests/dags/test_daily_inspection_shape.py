"""daily_inspection as the scheduler sees it: schedule from the inventory, wiring, pool, mapping,
docs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hisops.airflow import dagkit
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
    assert task.map_index_template == dagkit.MAP_LABEL  # the label set by t.label_system
    assert type(task).__name__.endswith("MappedOperator")


def test_params_and_runbook(dag):
    assert dag.params["systems"] == []
    assert "失败时怎么办" in dag.doc_md and "当前状态，非历史" in dag.doc_md
    assert all(task.task_display_name != task.task_id for task in dag.tasks)  # Chinese-first names
