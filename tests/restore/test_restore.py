"""Restore on demand (domain level): who may, which backup, new database, overwrite by swap."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hisops.restore.checksums import table_checksums
from hisops.restore.errors import RestoreRefused
from hisops.restore.names import check_new_name, staging_name
from hisops.restore.request import (
    RestorePlan,
    RestoreRequest,
    authorize,
    choose_backup,
    parse_backup_param,
)
from hisops.restore.stage import drop_staging, stage
from hisops.restore.switch import switch_new_database, switch_overwrite
from hisops.verify import scratch


def _req(**kw) -> RestoreRequest:
    base = {
        "database_id": "his_emr",
        "backup": 1,
        "target": "overwrite",
        "confirm": "his_emr",
        "user": "sysadmin",
        "roles": frozenset({"系统管理员"}),
    }
    return RestoreRequest(**{**base, **kw})


def test_overwrite_needs_typed_confirmation_and_system_admin():
    authorize(_req())  # allowed
    authorize(_req(roles=frozenset({"超级管理员"})))
    authorize(
        _req(target="new_database", confirm=None, roles=frozenset())
    )  # a new database needs neither
    for bad in (
        _req(confirm=None),
        _req(confirm="HIS_EMR"),
        _req(confirm="his_outpatient"),
        _req(confirm="his_emr "),
        _req(confirm=" his_emr"),
        _req(confirm="his_emr\n"),
        _req(roles=frozenset({"运维人员"})),
        _req(roles=frozenset({"普通用户", "运维人员"})),
        _req(roles=frozenset()),
        _req(user=None),
        _req(target="elsewhere"),
        _req(roles=frozenset({"Admin"})),
        _req(roles=frozenset({"审计管理员"})),
    ):  # not hisops roles / read-only
        with pytest.raises(RestoreRefused):
            authorize(bad)


def test_backup_param_and_choice():
    assert parse_backup_param("latest_verified") == "latest_verified"
    assert parse_backup_param("12") == 12 and parse_backup_param(12) == 12
    for bad in ("0", "-3", "abc", None, True, 1.5):
        with pytest.raises(RestoreRefused):
            parse_backup_param(bad)

    def rec(i, state, deleted=None):
        return SimpleNamespace(id=i, state=state, deleted_at=deleted, path=f"/b/{i}")

    records = [
        rec(5, "failed"),
        rec(4, "completed"),
        rec(3, "verified", deleted="yes"),
        rec(2, "verified"),
    ]
    assert choose_backup(records, "latest_verified", "d1").id == 2
    assert choose_backup(records, 4, "d1").id == 4
    for wanted in (5, 3, 99):
        with pytest.raises(RestoreRefused):
            choose_backup(records, wanted, "d1")
    with pytest.raises(RestoreRefused):
        choose_backup([rec(1, "completed")], "latest_verified", "d1")


def test_new_database_names_are_checked():
    check_new_name("his_emr_copy", exists=False)
    for bad in ("His", "1abc", "a-b", "x" * 64, "hisops_drill_x", "pg_x", "template9"):
        with pytest.raises(RestoreRefused):
            check_new_name(bad, exists=False)
    with pytest.raises(RestoreRefused):
        check_new_name("his_emr_copy", exists=True)


def _plan(outcome, target: str, target_db: str, production_db: str) -> RestorePlan:
    return RestorePlan(
        database_id=outcome.target_id,
        backup_id=outcome.backup_id,
        backup_dir=outcome.path,
        target=target,
        target_db=target_db,
        staging_db=staging_name(outcome.target_id, outcome.backup_id),
        production_db=production_db,
        user="sysadmin",
    )


def test_restore_into_a_new_database_equals_the_source(pg, source_db, make_backup):
    outcome = make_backup(source_db)
    target = f"{source_db}_copy"
    plan = _plan(outcome, "new_database", target, source_db)
    try:
        assert stage(plan, pg.dsn()) > 0
        switch_new_database(pg.dsn(), plan)
        assert table_checksums(pg.dsn(target)) == table_checksums(pg.dsn(source_db))
        assert not scratch.database_exists(pg.dsn(), plan.staging_db)
    finally:
        pg.execute(f'DROP DATABASE IF EXISTS "{target}"')


def test_overwrite_swaps_in_one_go_and_keeps_the_old_database(pg, his_db, make_backup):
    pg.execute(f'REVOKE CONNECT ON DATABASE "{his_db}" FROM PUBLIC')
    pg.execute(f'ALTER DATABASE "{his_db}" CONNECTION LIMIT 50')
    outcome = make_backup(his_db)
    at_backup = table_checksums(pg.dsn(his_db))
    scratch.run_sql(pg.dsn(his_db), ["DELETE FROM ward_bed WHERE bed > 30"])  # the "damage" to undo
    damaged = table_checksums(pg.dsn(his_db))
    plan = _plan(outcome, "overwrite", his_db, his_db)

    stage(plan, pg.dsn())
    assert table_checksums(pg.dsn(his_db)) == damaged  # staging never touches production
    result = switch_overwrite(pg.dsn(), plan)

    assert table_checksums(pg.dsn(his_db)) == at_backup
    assert table_checksums(pg.dsn(result.previous_db)) == damaged
    assert not scratch.database_exists(pg.dsn(), plan.staging_db)
    import psycopg2

    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT datconnlimit, datallowconn, datacl::text FROM pg_database WHERE datname = %s",
            (his_db,),
        )
        limit, allowed, acl = cur.fetchone()
    conn.close()
    assert limit == 50 and allowed and "=c" not in acl.split(",")[0]  # PUBLIC still has no CONNECT


def test_failed_stage_leaves_production_alone_and_staging_droppable(pg, his_db, make_backup):
    outcome = make_backup(his_db)
    before = table_checksums(pg.dsn(his_db))
    victim = Path(outcome.path) / "dump" / "toc.dat"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    plan = _plan(outcome, "overwrite", his_db, his_db)
    with pytest.raises(scratch.RestoreError, match="toc.dat"):
        stage(plan, pg.dsn())
    assert table_checksums(pg.dsn(his_db)) == before
    assert not scratch.database_exists(pg.dsn(), plan.staging_db)  # refused before creating it


def test_staging_left_by_a_failed_pg_restore_is_dropped_by_the_guarded_teardown(
    pg, his_db, make_backup
):
    outcome = make_backup(his_db)
    plan = _plan(outcome, "new_database", f"{his_db}_new", his_db)
    scratch.create_database(pg.dsn(), plan.staging_db)
    scratch.run_sql(
        pg.dsn(plan.staging_db), ["CREATE TABLE patient (x int)"]
    )  # pg_restore will collide
    with pytest.raises(scratch.RestoreError, match="pg_restore"):
        scratch.run_pg_restore(Path(outcome.path) / "dump", pg.dsn(plan.staging_db))
    assert drop_staging(pg.dsn(), plan.staging_db)
    assert not scratch.database_exists(pg.dsn(), plan.staging_db)
    with pytest.raises(scratch.ScratchGuardError):
        drop_staging(pg.dsn(), his_db)
    assert scratch.database_exists(pg.dsn(), his_db)
