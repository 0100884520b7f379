"""db_backup end to end with dag.test(): real Airflow, PostgreSQL, off-site copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hisops.backup.manifest import load_manifest, manifest_sha256, verify_files

from tests.dags.backup_kit import asset_events, map_labels
from tests.dags.conftest import load_dag


@pytest.fixture
def dag_env(backup_dag_env):
    return backup_dag_env  # tests/dags/backup_kit.py


def test_db_backup_dag_produces_a_completed_backup_asset_and_offsite_copy(dag_env, tmp_path):
    before = len(asset_events("hisops://backup/d1"))
    run = load_dag("db_backup").test()
    assert run.state == "success"
    [record] = dag_env.backups_for("d1")
    assert (
        record.state == "completed"
        and record.dag_run_id == run.run_id
        and record.kind == "database"
    )
    manifest = load_manifest(record.path)
    assert verify_files(record.path, manifest) == [] and record.manifest_sha256 == manifest_sha256(
        record.path
    )
    assert (manifest.options.jobs, manifest.options.compress) == (2, 1)
    events = asset_events("hisops://backup/d1")
    assert len(events) == before + 1 and events[-1]["backup_id"] == record.id
    assert events[-1]["path"] == record.path
    assert map_labels(run, "backup") == ["d1"]
    copy = tmp_path / "nas" / "d1" / Path(record.path).name
    assert verify_files(copy, load_manifest(copy)) == []
    actions = {(e.action, e.result) for e in dag_env.audit_events(limit=10)}
    assert {("backup", "success"), ("backup_offsite", "success")} <= actions


def test_db_backup_dag_fails_visibly_when_the_database_is_unreachable(dag_env, monkeypatch, pg):
    monkeypatch.setenv(
        "AIRFLOW_CONN_BK_DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": pg.host,
                "port": pg.port,
                "login": pg.user,
                "password": "wrong",
                "schema": "x",
            }
        ),
    )
    run = load_dag("db_backup").test()
    assert run.state == "failed"
    states = {r.state for r in dag_env.backups_for("d1")}
    assert states == {"failed"}
    assert "password authentication failed" in dag_env.backups_for("d1")[0].error


def test_unknown_database_in_params_is_refused_by_name(dag_env):
    from hisops.airflow.backup_tasks import select_databases

    with pytest.raises(ValueError, match="not in the inventory: nope"):
        select_databases(["nope"])
    assert select_databases(["d1"]) == ["d1"] and select_databases([]) == ["d1"]
