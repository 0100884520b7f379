"""restore_database end to end with dag.test(): real Airflow, PostgreSQL, pg_dump/pg_restore."""

from __future__ import annotations

from typing import Any

import pytest
from hisops.restore.checksums import table_checksums
from hisops.verify import scratch

from tests.conftest import pg_conn_json
from tests.dags.conftest import load_dag
from tests.verify.conftest import scratch_databases


@pytest.fixture
def dag_env(logical_dag_env):
    return logical_dag_env


def _restore(dag_env, **conf) -> Any:
    return load_dag("restore_database").test(run_conf={"database_id": "d1", **conf})


def _refusals(repo) -> list:
    return [e for e in repo.audit_events() if e.action == "restore" and e.result == "refused"]


def test_overwrite_without_typed_confirmation_is_refused(dag_env, make_backup, pg):
    outcome = make_backup(dag_env.db)
    before = table_checksums(pg.dsn(dag_env.db))
    run = _restore(dag_env, backup_id=outcome.backup_id, target="overwrite", confirm="yes please")
    assert run.state == "failed"
    assert table_checksums(pg.dsn(dag_env.db)) == before
    (event,) = _refusals(dag_env.catalog)
    assert event.actor == "dag_test" and "confirm" in event.details["reason"]
    assert [b.id for b in dag_env.catalog.backups_for("d1")] == [
        outcome.backup_id
    ]  # no safety backup taken


@pytest.mark.parametrize(
    "via_connection", [False, True], ids=["security-manager", "hisops_airflow_db"]
)
def test_overwrite_by_a_role_below_system_admin_is_refused(
    dag_env, make_backup, pg, airflow_db, monkeypatch, via_connection
):
    from hisops.airflow.roles import ensure_user

    ensure_user("dag_test", "运维人员", "not-used-here-1")
    if via_connection:
        monkeypatch.setenv("AIRFLOW_CONN_HISOPS_AIRFLOW_DB", pg_conn_json(pg, "airflow"))
    outcome = make_backup(dag_env.db)
    before = table_checksums(pg.dsn(dag_env.db))
    run = _restore(dag_env, backup_id=str(outcome.backup_id), target="overwrite", confirm="d1")
    assert run.state == "failed"
    assert table_checksums(pg.dsn(dag_env.db)) == before
    (event,) = _refusals(dag_env.catalog)
    assert "运维人员" in event.details["reason"] and "系统管理员" in event.details["reason"]


def test_system_admin_overwrites_with_safety_backup_and_audit(dag_env, make_backup, pg, airflow_db):
    from hisops.airflow.roles import ensure_user

    ensure_user("dag_test", "系统管理员", "not-used-here-2")
    outcome = make_backup(dag_env.db)
    at_backup = table_checksums(pg.dsn(dag_env.db))
    scratch.run_sql(pg.dsn(dag_env.db), ["DELETE FROM prescription_item WHERE item_id % 2 = 0"])
    damaged = table_checksums(pg.dsn(dag_env.db))
    dag_env.catalog.mark_backup_verified(outcome.backup_id)

    run = _restore(dag_env, backup_id="latest_verified", target="overwrite", confirm="d1")

    assert run.state == "success"
    assert table_checksums(pg.dsn(dag_env.db)) == at_backup
    repo = dag_env.catalog
    done = next(e for e in repo.audit_events() if e.action == "restore" and e.result == "success")
    assert done.actor == "dag_test" and done.details["backup_id"] == outcome.backup_id
    safety = repo.get_backup(done.details["safety_backup_id"])
    assert (
        safety.state == "completed"
        and safety.database_id == "d1"
        and safety.id != outcome.backup_id
    )
    assert table_checksums(pg.dsn(done.details["previous_db"])) == damaged  # the old data is kept
    assert not [n for n in scratch_databases(pg) if "_d1_" in n]


def test_restore_to_a_new_database_by_default(dag_env, make_backup, pg):
    outcome = make_backup(dag_env.db)
    run = _restore(dag_env, backup_id=outcome.backup_id, new_database_name=f"{dag_env.db}_copy")
    try:
        assert run.state == "success"
        assert table_checksums(pg.dsn(f"{dag_env.db}_copy")) == table_checksums(pg.dsn(dag_env.db))
        done = next(e for e in dag_env.catalog.audit_events() if e.action == "restore")
        assert done.result == "success" and done.details["target_db"] == f"{dag_env.db}_copy"
        assert done.details["safety_backup_id"] is None
    finally:
        pg.execute(f'DROP DATABASE IF EXISTS "{dag_env.db}_copy"')
