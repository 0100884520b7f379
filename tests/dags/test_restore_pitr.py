"""restore_pitr with dag.test(): real Airflow, an archiving PostgreSQL and pgBackRest."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hisops.runinfo import RunInfo

from tests.conftest import pg_conn_json
from tests.dags.conftest import load_dag


def _inventory(tmp_path: Path, env, restores: Path) -> Path:
    pitr = env.server.pitr
    text = textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            servers:
              - id: pg-main
                conn_id: t_pitr
                data_directory: {env.server.data_directory}
                pitr:
                  stanza: {pitr.stanza}
                  repo: {{path: {pitr.repo.path}}}
                  config_path: {pitr.config_path}
                  socket_dir: {pitr.socket_dir}
                  os_user: {pitr.os_user}
                  restore_path: {restores}
        """)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def restore_env(pg, catalog, pitr_env, airflow_db, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_T_PITR", pg_conn_json(pitr_env.cluster, "postgres"))
    restores = pitr_env.root / f"restores-{tmp_path.name}"  # the PostgreSQL OS user reaches it
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path, pitr_env, restores)))
    monkeypatch.delenv("AIRFLOW_CONN_HISOPS_AIRFLOW_DB", raising=False)
    yield SimpleNamespace(catalog=catalog, env=pitr_env, restores=restores)
    import shutil

    shutil.rmtree(restores, ignore_errors=True)


def _restore(**conf):
    return load_dag("restore_pitr").test(run_conf={"server_id": "pg-main", **conf})


def _events(repo, result: str) -> list:
    found = [e for e in repo.audit_events() if e.action == "restore_pitr" and e.result == result]
    return sorted(found, key=lambda e: e.id)  # oldest first


def test_refused_without_the_exact_server_id_or_by_a_role_below_system_admin(restore_env):
    from hisops.airflow.roles import ensure_user

    ensure_user("dag_test", "运维人员", "not-used-here-3")
    repo = restore_env.catalog
    assert _restore(confirm="pg-main ").state == "failed"  # a trailing space is not the id
    assert _restore(confirm="pg-main").state == "failed"  # 运维人员 may not
    first, second = _events(repo, "refused")
    assert "confirm" in first.details["reason"] and first.actor == "dag_test"
    assert "运维人员" in second.details["reason"] and "系统管理员" in second.details["reason"]
    assert not restore_env.restores.exists()  # nothing restored, nothing created


@pytest.mark.long
def test_system_admin_restores_to_a_named_point_into_a_new_running_cluster(restore_env):
    from hisops.airflow.roles import ensure_user
    from hisops.pitr import markers, service
    from hisops.restore import pitr
    from hisops.targets.postgres import pg_session

    ensure_user("dag_test", "系统管理员", "not-used-here-4")
    env, repo = restore_env.env, restore_env.catalog
    run = RunInfo(dag_id="pitr_backup", run_id="manual__t", triggering_user="tester")
    backup = service.backup_server(repo, env.server, "emr", env.pgbr, "full", run)
    repo.mark_backup_verified(backup.backup_id)
    dsn, tag = env.dsn(), f"p{time.time_ns()}"

    def sql(target: str, statement: str, args: tuple = ()) -> list:
        with pg_session(target, read_only=False) as conn, conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []

    sql(dsn, "CREATE TABLE IF NOT EXISTS restore_probe (note text, at timestamptz)")
    sql(dsn, "INSERT INTO restore_probe VALUES (%s, clock_timestamp())", (f"before {tag}",))
    markers.restore_point(dsn, tag)
    sql(dsn, "INSERT INTO restore_probe VALUES (%s, clock_timestamp())", (f"after {tag}",))
    markers.switch_and_wait(dsn)

    dag_run = _restore(target="name", target_value=tag, confirm="pg-main")

    assert dag_run.state == "success"
    (done,) = _events(repo, "success")
    (asked,) = [e for e in repo.audit_events() if e.action == "restore_pitr_authorized"]
    assert done.actor == asked.actor == "dag_test" and done.details["backup_id"] == backup.backup_id
    copy = Path(done.details["datadir"])
    assert copy.parent == restore_env.restores and copy.name.startswith("hisops_restored_pg-main_")
    try:
        copy_dsn = pitr.copy_dsn(dsn, done.details["port"])
        notes = {r[0] for r in sql(copy_dsn, "SELECT note FROM restore_probe")}
        assert f"before {tag}" in notes and f"after {tag}" not in notes
    finally:
        from hisops.pitr.drill import PitrDrillRequest

        req = PitrDrillRequest(
            backup_id=backup.backup_id,
            server_id="pg-main",
            label=backup.label,
            production_dsn=dsn,
            production_datadir=env.server.data_directory,
            pgbr=env.pgbr,
            scratch_root=env.root,
            evidence_root=env.root,
            os_user=env.cluster.os_user,
        )
        pitr.remove_copy(req, copy)
