"""db_backup, file_backup and backup_retention end to end with dag.test(): real Airflow, PostgreSQL, sshd."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
from hisops.backup.manifest import load_manifest, manifest_sha256, verify_files

from tests.conftest import pg_conn_json

REPO = Path(__file__).resolve().parents[2]


def _inventory(tmp_path: Path, sshd) -> Path:
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
def dag_env(pg, catalog, his_db, sshd, airflow_db, monkeypatch, tmp_path):
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
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path, sshd)))
    from hisops.airflow.pools import ensure_pools

    ensure_pools()
    return catalog


def _dag(name: str):
    spec = importlib.util.spec_from_file_location(
        f"{name}_under_test", REPO / "dags" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, name)()
    for task in dag.tasks:
        task.retries = 0  # a failing attempt shows at once instead of after retry_delay
    return dag


def _asset_events(uri: str) -> list:
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


def _map_labels(run, task_id: str) -> list[str]:
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


def test_db_backup_dag_produces_a_completed_backup_asset_and_offsite_copy(dag_env, tmp_path):
    before = len(_asset_events("hisops://backup/d1"))
    run = _dag("db_backup").test()
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
    events = _asset_events("hisops://backup/d1")
    assert len(events) == before + 1 and events[-1]["backup_id"] == record.id
    assert events[-1]["path"] == record.path
    assert _map_labels(run, "backup") == ["d1"]
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
    run = _dag("db_backup").test()
    assert run.state == "failed"
    states = {r.state for r in dag_env.backups_for("d1")}
    assert states == {"failed"}
    assert "password authentication failed" in dag_env.backups_for("d1")[0].error


def test_file_backup_dag_backs_up_local_and_ssh_hosts_and_verifies(dag_env, tmp_path):
    run = _dag("file_backup").test()
    assert run.state == "success"
    for host in ("h-local", "h-ssh"):
        [record] = dag_env.backups_for(host)
        assert (record.kind, record.state) == ("files", "verified")
        assert verify_files(record.path, load_manifest(record.path)) == []
        assert _asset_events(f"hisops://backup/{host}")[-1]["backup_id"] == record.id
    assert _map_labels(run, "backup") == ["h-local", "h-ssh"]


def _age(repo, backup_id: int, days: int) -> None:
    from sqlalchemy import text

    with repo.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE hisops.backup SET started_at = now() - make_interval(days => :d) WHERE id = :i"
            ),
            {"d": days, "i": backup_id},
        )


def test_backup_retention_dag_dry_run_then_delete(dag_env, tmp_path):
    """The newest verified backup's directory was deleted by hand: reconcile marks it missing (incident),
    retention protects the newest *restorable* one and deletes only what is older."""
    import shutil

    ids = []
    for _ in range(3):
        _dag("db_backup").test()
        ids.append(dag_env.backups_for("d1")[0].id)
    for age, bid in zip((3, 2, 1), ids, strict=True):
        _age(dag_env, bid, age)
        dag_env.mark_backup_verified(bid)
    shutil.rmtree(dag_env.get_backup(ids[2]).path)
    run = _dag("backup_retention").test()  # manual run, dry_run=auto → preview only
    assert run.state == "success"
    assert dag_env.get_backup(ids[2]).state == "missing"
    assert [i.check_id for i in dag_env.open_incidents()] == ["backup.storage"]
    assert len(dag_env.backups_for("d1")) == 3
    event = next(e for e in dag_env.audit_events(limit=5) if e.action == "backup_retention")
    assert (
        event.details["dry_run"] is True
        and sorted(event.details["planned"]["database:d1"]) == ids[:1]
    )
    run = _dag("backup_retention").test(run_conf={"dry_run": "no"})
    assert run.state == "success"
    assert [b.id for b in dag_env.backups_for("d1")] == [ids[2], ids[1]]
    record = next(b for b in dag_env.backups_for("d1", include_deleted=True) if b.id == ids[0])
    assert record.deleted_at and "newer verified" in record.deleted_reason
    assert not Path(record.path).exists()
    assert not (tmp_path / "nas" / "d1" / Path(record.path).name).exists()
    assert dag_env.latest_verified_backup("d1").id == ids[1]  # the newest restorable one, kept
    deletions = [e for e in dag_env.audit_events(limit=20) if e.action == "backup_delete"]
    assert [e.details["backup_id"] for e in deletions] == ids[:1]


def test_file_backup_dag_without_any_backup_paths_is_a_quiet_success(
    dag_env, tmp_path, monkeypatch
):
    text = Path(tmp_path / "inventory.yaml").read_text()
    text = "\n".join(line for line in text.splitlines() if "backup_paths" not in line)
    (tmp_path / "no-paths.yaml").write_text(text + "\n")
    monkeypatch.setenv("HISOPS_INVENTORY", str(tmp_path / "no-paths.yaml"))
    assert _dag("file_backup").test().state == "success"
    assert dag_env.backups_for("h-local") == []


def test_unknown_database_in_params_is_refused_by_name(dag_env):
    from hisops.airflow.backup_tasks import select_databases

    with pytest.raises(ValueError, match="not in the inventory: nope"):
        select_databases(["nope"])
    assert select_databases(["d1"]) == ["d1"] and select_databases([]) == ["d1"]
