"""Fixtures shared with the capability tests the DAG tests build on, and the DAG loader."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import pg_conn_json
from tests.dags.backup_kit import (  # noqa: F401 - fixtures of the backup DAG tests
    backup_dag_env,
    backup_his_db,
)
from tests.pitr.conftest import pitr_env  # noqa: F401 - the archiving cluster of the PITR tests
from tests.verify.conftest import his_db, make_backup  # noqa: F401 - HIS database, real backups

REPO = Path(__file__).resolve().parents[2]


def load_dag(name: str):
    """``dags/<name>.py`` freshly imported (the inventory of the test), retries off."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_under_test", REPO / "dags" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, name)()
    for task in dag.tasks:
        task.retries = 0
    return dag


def smtp_conn_json(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "from_email": "hisops@hospital.example",
                "disable_tls": True,
                "disable_ssl": True,
            },
        }
    )


def logical_inventory(tmp_path: Path) -> Path:
    """One system, one database ``d1`` (connection vf_db), mail to a supervisor (vf_smtp)."""
    text = textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        notifications:
          - name: 信息科主管
            kind: email
            conn_id: vf_smtp
            to: [supervisor@hospital.example]
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases:
              - id: d1
                conn_id: vf_db
                critical_tables: [patient]
                critical_columns: {{patient: [patient_id, name]}}
                backup: {{keep_daily: 1, keep_weekly: 0, keep_monthly: 0, jobs: 2, compress: 1}}
        """)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def logical_dag_env(pg, catalog, his_db, airflow_db, mailbox, monkeypatch, tmp_path):  # noqa: F811
    """Connections and inventory for DAG runs against one synthetic HIS database ``d1``."""
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_VF_DB", pg_conn_json(pg, his_db))
    monkeypatch.setenv("AIRFLOW_CONN_VF_SMTP", smtp_conn_json(mailbox.port))
    monkeypatch.setenv("HISOPS_INVENTORY", str(logical_inventory(tmp_path)))
    monkeypatch.delenv("AIRFLOW_CONN_HISOPS_AIRFLOW_DB", raising=False)
    from hisops.airflow.pools import ensure_pools

    ensure_pools()
    return SimpleNamespace(catalog=catalog, db=his_db, mailbox=mailbox, tmp=tmp_path)
