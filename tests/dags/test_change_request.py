"""change_request DAG with dag.test(): a change without a fresh verified backup stops before the
approval task, and the last task still records the outcome and writes the change's page."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, pg_conn_json


@pytest.fixture
def dag_env(pg, catalog, new_db, airflow_db, monkeypatch, tmp_path):
    db = new_db("chgdag")
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_CHG_DB", pg_conn_json(pg, db))
    inventory = {
        "version": 1,
        "hospital": "测试医院",
        "maintenance_window": {"start": "01:30", "end": "05:30"},
        "backup_storage": {"path": str(tmp_path / "backups")},
        "reports": {"path": str(tmp_path / "r")},
        "systems": [
            {
                "id": "outpatient",
                "name": "门诊系统",
                "name_en": "Outpatient",
                "databases": [{"id": "chg_db", "conn_id": "chg_db"}],
            }
        ],
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    monkeypatch.setenv("HISOPS_INVENTORY", str(path))
    return catalog


def _dag():
    spec = importlib.util.spec_from_file_location(
        "change_request_under_test", REPO / "dags" / "change_request.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.change_request()
    for task in dag.tasks:
        task.retries = 0
    return dag


def test_no_fresh_backup_stops_before_approval_and_the_page_is_written(dag_env):
    run = _dag().test(
        run_conf={
            "kind": "sql",
            "title": "加索引",
            "reason": "慢查询",
            "impact": "无停机",
            "database_id": "chg_db",
            "deploy_sql": "CREATE TABLE t (id int);",
            "verify_sql": "SELECT id FROM t WHERE false;",
            "revert_sql": "DROP TABLE t;",
        }
    )
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["backup"] == "failed" and states["approve"] == "upstream_failed"
    assert (
        states["outcome"] == "failed"
    )  # ran (all_done), wrote the page, and says the change did not happen
    (change,) = dag_env.recent_changes()
    assert change.state == "refused"
    assert [s.step for s in dag_env.change_steps(change.id)] == ["request", "assessment", "backup"]
    assert Path(change.details["page_path"]).is_file()
