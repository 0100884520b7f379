"""backup_retention end to end with dag.test(): reconcile, dry run, GFS deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dags.conftest import load_dag


@pytest.fixture
def dag_env(backup_dag_env):
    return backup_dag_env  # tests/dags/backup_kit.py


def _age(repo, backup_id: int, days: int) -> None:
    from sqlalchemy import text

    with repo.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE hisops.backup SET started_at = now() - make_interval(days => :d) "
                "WHERE id = :i"
            ),
            {"d": days, "i": backup_id},
        )


def test_backup_retention_dag_dry_run_then_delete(dag_env, tmp_path):
    """The newest verified backup's directory was deleted by hand: reconcile marks it missing
    (incident), retention protects the newest *restorable* one and deletes only what is older."""
    import shutil

    ids = []
    for _ in range(3):
        load_dag("db_backup").test()
        ids.append(dag_env.backups_for("d1")[0].id)
    for age, bid in zip((3, 2, 1), ids, strict=True):
        _age(dag_env, bid, age)
        dag_env.mark_backup_verified(bid)
    shutil.rmtree(dag_env.get_backup(ids[2]).path)
    run = load_dag("backup_retention").test()  # manual run, dry_run=auto → preview only
    assert run.state == "success"
    assert dag_env.get_backup(ids[2]).state == "missing"
    assert [i.check_id for i in dag_env.open_incidents()] == ["backup.storage"]
    assert len(dag_env.backups_for("d1")) == 3
    event = next(e for e in dag_env.audit_events(limit=5) if e.action == "backup_retention")
    assert (
        event.details["dry_run"] is True
        and sorted(event.details["planned"]["database:d1"]) == ids[:1]
    )
    run = load_dag("backup_retention").test(run_conf={"dry_run": "no"})
    assert run.state == "success"
    assert [b.id for b in dag_env.backups_for("d1")] == [ids[2], ids[1]]
    record = next(b for b in dag_env.backups_for("d1", include_deleted=True) if b.id == ids[0])
    assert record.deleted_at and "newer verified" in record.deleted_reason
    assert not Path(record.path).exists()
    assert not (tmp_path / "nas" / "d1" / Path(record.path).name).exists()
    assert dag_env.latest_verified_backup("d1").id == ids[1]  # the newest restorable one, kept
    deletions = [e for e in dag_env.audit_events(limit=20) if e.action == "backup_delete"]
    assert [e.details["backup_id"] for e in deletions] == ids[:1]
