"""Shared setup of the backup DAG tests (db_backup, file_backup, backup_retention,
backup_verification): the inventory of a database and two hosts, asset events, map labels.

The DAG loader and the one-database ``logical_dag_env`` are in tests/dags/conftest.py; the
fixtures here are registered for tests/dags by it too.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import pg_conn_json

REPO = Path(__file__).resolve().parents[2]


# --- db_backup, file_backup, backup_retention -----------------------------------------------------


def backup_inventory(tmp_path: Path) -> Path:
    (tmp_path / "etc-his").mkdir()
    (tmp_path / "etc-his" / "his.conf").write_text("port = 8080\n")
    text = textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage:
          path: {tmp_path}/backups
          offsite: {{kind: path, path: {tmp_path}/nas}}
        reports: {{path: {tmp_path}/reports}}
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases:
              - id: d1
                conn_id: bk_db
                backup: {{keep_daily: 1, keep_weekly: 0, keep_monthly: 0, jobs: 2, compress: 1}}
            hosts:
              - id: h-local
                local: true
                backup_paths: [{tmp_path}/etc-his]
              - id: h-ssh
                ssh_conn_id: bk_ssh
                backup_paths: [{tmp_path}/etc-his/his.conf]
        """)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def backup_his_db(pg, new_db) -> str:
    """A new database with the synthetic HIS schema and a little data (as tests/backup's)."""
    from tests.backup.conftest import small_his_db

    return small_his_db(pg, new_db)


@pytest.fixture
def backup_dag_env(pg, catalog, backup_his_db, sshd, airflow_db, monkeypatch, tmp_path):
    """The catalog, with connections and the inventory of a database, a local and an SSH host."""
    his_db = backup_his_db
    catalog_db = catalog.engine.url.database
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_BK_DB", pg_conn_json(pg, his_db))
    monkeypatch.setenv(
        "AIRFLOW_CONN_BK_SSH",
        json.dumps(
            {
                "conn_type": "ssh",
                "host": sshd.host,
                "port": sshd.port,
                "login": sshd.user,
                "extra": {"key_file": str(sshd.client_key)},
            }
        ),
    )
    monkeypatch.setenv("HISOPS_INVENTORY", str(backup_inventory(tmp_path)))
    from hisops.airflow.pools import ensure_pools

    ensure_pools()
    return catalog


def asset_events(uri: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
            .all()
        )
        return [dict(r.extra) for r in rows]


def map_labels(run, task_id: str) -> list[str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(
                TaskInstance.run_id == run.run_id,
                TaskInstance.dag_id == run.dag_id,
                TaskInstance.task_id == task_id,
            )
            .all()
        )
        return sorted(ti.rendered_map_index or "" for ti in tis)


# --- backup_verification --------------------------------------------------------------------


def flip_a_byte(backup_path: str) -> str:
    """Corrupt the largest dump file of a backup in place; returns its name."""
    victim = max(
        (p for p in (Path(backup_path) / "dump").iterdir() if p.suffix == ".gz"),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0x40
    victim.write_bytes(bytes(data))
    return victim.name
