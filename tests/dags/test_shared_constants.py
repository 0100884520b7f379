"""Constants DAG files share with the domain: map label, pools, coupled timeouts (defined once)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hisops import timeouts
from hisops.airflow import dagkit
from hisops.airflow.pools import POOLS

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"shared_constants_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dags() -> dict:
    mp = pytest.MonkeyPatch()
    mp.setenv("HISOPS_INVENTORY", str(REPO / "inventory" / "hospital.example.yaml"))
    out = {}
    for path in DAG_FILES:
        dag = getattr(load(path), path.stem)()  # every file's @dag function is named like it
        out[dag.dag_id] = dag
    mp.undo()
    return out


def test_every_pool_a_task_names_is_created(dags):
    used = {t.pool for d in dags.values() for t in d.tasks if t.pool != "default_pool"}
    assert used, "no DAG uses a hisops pool"
    assert used <= set(POOLS), used - set(POOLS)
    assert set(POOLS) == {dagkit.POOL_INSPECTION, dagkit.POOL_BACKUP, dagkit.POOL_VERIFICATION}


def test_mapped_tasks_use_the_one_map_label(dags):
    templates = {
        t.map_index_template
        for d in dags.values()
        for t in d.tasks
        if getattr(t, "map_index_template", None) and "hisops_label" in t.map_index_template
    }
    assert templates == {dagkit.MAP_LABEL}
    for path in DAG_FILES:
        assert "hisops_label | default" not in path.read_text(), f"{path.name} copies MAP_LABEL"


@pytest.mark.parametrize(
    ("dag_id", "task_ids", "limit"),
    [
        ("db_backup", ("backup", "offsite"), timeouts.DB_BACKUP_TASK),
        ("file_backup", ("backup", "offsite"), timeouts.FILE_BACKUP_TASK),
        ("pitr_backup", ("backup",), timeouts.PITR_BACKUP_TASK),
    ],
)
def test_backup_task_timeouts_are_the_shared_ones(dags, dag_id, task_ids, limit):
    dag = dags[dag_id]
    for task_id in task_ids:
        assert dag.get_task(task_id).execution_timeout == limit, (dag_id, task_id)


def test_stale_running_rows_wait_longer_than_any_backup_task():
    from hisops.backup import dump
    from hisops.pitr import service

    assert max(timeouts.DB_BACKUP_TASK, timeouts.FILE_BACKUP_TASK) < timeouts.STALE_BACKUP
    assert timeouts.hours(timeouts.STALE_BACKUP) == dump.STALE_HOURS
    assert service.STALE_RUNNING == timeouts.STALE_PITR_BACKUP > timeouts.PITR_BACKUP_TASK
