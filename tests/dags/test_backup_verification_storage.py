"""A worker that cannot see the shared backup storage: the drill FAILS with an incident and a mail
(never a green "nothing to drill"), and no backup is marked missing because of it."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
from hisops.backup.dump import DumpSpec, backup_database
from hisops.storage.marker import CHECK_ID, StorageMismatch

from tests.conftest import REPO, pg_conn_json
from tests.verify.conftest import make_his_db


def _inventory(tmp_path: Path, storage: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {storage}}}
        reports: {{path: {tmp_path}/reports}}
        notifications: [{{name: 主管, kind: email, conn_id: sv_smtp, to: \
[supervisor@hospital.example]}}]
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases: [{{id: d1, conn_id: sv_db, backup: {{keep_daily: 1, jobs: 1, compress: 1}}}}]
        """)
    )
    return path


def _verification_dag():
    spec = importlib.util.spec_from_file_location(
        "bv_storage", REPO / "dags" / "backup_verification.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.backup_verification()
    for task in dag.tasks:
        task.retries = 0
    return dag


@pytest.fixture
def his(pg):
    name = make_his_db(pg, "his_sv")
    yield name
    pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_missing_mount_fails_the_drill_with_an_incident(
    pg, catalog, his, airflow_db, mailbox, monkeypatch, tmp_path
):
    from hisops.airflow import runtime
    from hisops.airflow.pools import ensure_pools
    from hisops.airflow.shared_storage import backup_root
    from hisops.backup.trust import last_restorable

    ensure_pools()
    nfs = tmp_path / "nfs"
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_SV_DB", pg_conn_json(pg, his))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SV_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": mailbox.host,
                "port": mailbox.port,
                "extra": {
                    "from_email": "hisops@hospital.example",
                    "disable_tls": True,
                    "disable_ssl": True,
                },
            }
        ),
    )
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path, nfs)))
    root = backup_root(runtime.inventory())  # the first worker: marker created, id recorded
    outcome = backup_database(
        DumpSpec(
            database_id="d1", system_id="emr", dsn=pg.dsn(his), storage=root, jobs=1, compress=1
        ),
        catalog,
    )
    catalog.mark_backup_verified(outcome.backup_id)

    nfs.rename(tmp_path / "nfs-on-the-nas")  # another worker: nothing mounted at the same path
    nfs.mkdir()
    with pytest.raises(StorageMismatch, match="not visible"):
        last_restorable(catalog, runtime.inventory(), "d1")
    run = _verification_dag().test(run_conf={"backup_id": outcome.backup_id})
    assert run.state == "failed"  # not a green "nothing to drill"
    assert catalog.get_backup(outcome.backup_id).state == "verified"  # not marked missing
    [incident] = [i for i in catalog.open_incidents() if i.check_id == CHECK_ID]
    assert incident.target_id == "storage:backups" and incident.severity == "critical"
    assert mailbox.subjects("共享存储不可见 Shared storage not visible")
