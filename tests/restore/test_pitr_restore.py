"""Point-in-time restore on demand: the decisions, and a real pgBackRest restore (new cluster)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from hisops.pitr import drill as pitr_drill
from hisops.restore import pitr
from hisops.restore.errors import RestoreRefused
from hisops.runinfo import RunInfo

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _req(**kw) -> pitr.PitrRestoreRequest:
    base = {"server_id": "pg-main", "target_kind": "latest", "confirm": "pg-main", "user": "sa"}
    return pitr.PitrRestoreRequest(**{**base, **kw})


def test_the_server_id_must_be_typed_exactly_and_the_target_well_formed():
    pitr.check_request(_req())
    pitr.check_request(_req(target_kind="time", target_value="2026-12-01 09:30:00+08:00"))
    pitr.check_request(_req(target_kind="name", target_value="before_upgrade"))
    for bad in (
        _req(confirm=None),
        _req(confirm="pg-main "),
        _req(confirm=" pg-main"),
        _req(confirm="PG-MAIN"),
        _req(confirm="pg-other"),
        _req(target_kind="time", target_value="2026-12-01 09:30:00"),  # no zone
        _req(target_kind="time", target_value="yesterday"),
        _req(target_kind="name", target_value=None),
        _req(target_kind="name", target_value="a b; drop"),
        _req(target_kind="immediate"),
        _req(port=80),
    ):
        with pytest.raises(RestoreRefused):
            pitr.check_request(bad)


def test_backup_field_is_auto_or_a_positive_id():
    assert pitr.parse_backup(None) == pitr.parse_backup("") == pitr.parse_backup("auto") == "auto"
    assert pitr.parse_backup("7") == pitr.parse_backup(7) == 7
    for bad in ("0", -1, "latest_verified", True, "x"):
        with pytest.raises(RestoreRefused):
            pitr.parse_backup(bad)


def _rec(ident, state, finished, kind="physical", deleted=None):
    manifest = {"label": f"L{ident}", "finished_at": finished.isoformat()}
    return SimpleNamespace(
        id=ident,
        state=state,
        kind=kind,
        deleted_at=deleted,
        manifest=manifest,
        finished_at=finished,
    )


def test_backup_set_is_the_newest_verified_one_that_ended_before_the_target():
    records = [  # newest first
        _rec(6, "completed", NOW - timedelta(hours=1)),
        _rec(5, "verified", NOW - timedelta(hours=2)),
        _rec(4, "verified", NOW - timedelta(hours=5), deleted="yes"),
        _rec(3, "verified", NOW - timedelta(hours=8)),
        _rec(2, "failed", NOW - timedelta(hours=9)),
        _rec(1, "verified", NOW - timedelta(hours=10), kind="database"),
    ]
    assert pitr.choose_physical(records, pitr.AUTO, None, "pg-main").id == 5
    assert pitr.choose_physical(records, pitr.AUTO, NOW - timedelta(hours=3), "s").id == 3
    assert pitr.choose_physical(records, 6, None, "s").id == 6  # named: completed is fine
    for backup, before in ((2, None), (4, None), (1, None), (99, None), (5, NOW - timedelta(3))):
        with pytest.raises(RestoreRefused):
            pitr.choose_physical(records, backup, before, "s")
    with pytest.raises(RestoreRefused, match="no verified physical backup"):
        pitr.choose_physical(records, pitr.AUTO, NOW - timedelta(hours=9), "s")


def test_copies_are_new_directories_never_production_and_never_swept_by_drills(tmp_path):
    prod = tmp_path / "pgdata"
    prod.mkdir()
    copy = pitr.copy_dir(tmp_path / "restores", "pg-main", NOW)
    assert copy.name.startswith("hisops_restored_pg-main_261201100000_")
    pitr.assert_new_datadir(copy, str(prod))
    assert not pitr_drill.SCRATCH_RE.fullmatch(copy.name)  # remove_stale of drills leaves it
    for bad in (prod, prod / copy.name, tmp_path / "restores" / "pgdata"):
        with pytest.raises(RestoreRefused):
            pitr.assert_new_datadir(bad, str(prod))
    copy.mkdir(parents=True)
    with pytest.raises(RestoreRefused):  # exists already
        pitr.assert_new_datadir(copy, str(prod))


# --- real pgBackRest ------------------------------------------------------------------------------


def _probe(dsn: str, sql: str, args: tuple = ()) -> list[tuple]:
    from hisops.targets.postgres import pg_session

    with pg_session(dsn, read_only=False, target="probe") as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else []


def test_restore_to_a_time_holds_the_row_before_and_not_the_row_after(pitr_env, catalog):
    from hisops.pitr import markers, service

    run = RunInfo(dag_id="restore_pitr", run_id="manual__t", triggering_user="tester")
    env, server = pitr_env, pitr_env.server
    outcome = service.backup_server(catalog, server, "emr", env.pgbr, "full", run)
    catalog.mark_backup_verified(outcome.backup_id)
    dsn = env.dsn()
    _probe(dsn, "CREATE TABLE IF NOT EXISTS restore_probe (note text, at timestamptz)")
    tag = f"t{time.time_ns()}"
    _probe(dsn, "INSERT INTO restore_probe VALUES (%s, clock_timestamp())", (f"before {tag}",))
    before_mark = markers.write_marker(dsn, f"before {tag}")
    time.sleep(1.2)
    (point,) = _probe(dsn, "SELECT clock_timestamp()")[0]
    time.sleep(1.2)
    after_mark = markers.write_marker(dsn, f"after {tag}")
    _probe(dsn, "INSERT INTO restore_probe VALUES (%s, clock_timestamp())", (f"after {tag}",))
    markers.switch_and_wait(dsn)  # both rows are in the archive: only the target stops recovery

    plan = pitr.PitrRestorePlan(
        server_id=server.id,
        backup_id=outcome.backup_id,
        label=outcome.label,
        target_kind="time",
        target_value=point.isoformat(),
        datadir=str(pitr.copy_dir(pitr.restore_root(server), server.id)),
        port=0,
        user="tester",
    )
    result = pitr.restore_copy(plan, server, dsn, env.pgbr)
    copy = Path(result["datadir"])
    try:
        copy_dsn = pitr.copy_dsn(dsn, result["port"])
        notes = {r[0] for r in _probe(copy_dsn, "SELECT note FROM restore_probe")}
        assert f"before {tag}" in notes and f"after {tag}" not in notes
        assert _probe(copy_dsn, "SELECT pg_is_in_recovery()") == [(False,)]  # promoted
        assert result["target"]["before"]["id"] == before_mark.id
        assert result["target"]["after"]["id"] == after_mark.id
        assert any("point proven" in n for n in result["notes"])
        auto = (copy / "postgresql.auto.conf").read_text()
        assert f"port = {result['port']}" in auto and "archive_mode = 'off'" in auto
        production_dir = Path(server.data_directory)
        assert copy != production_dir and production_dir not in copy.parents
        # production goes on: both rows there, still archiving
        prod_notes = {r[0] for r in _probe(dsn, "SELECT note FROM restore_probe")}
        assert {f"before {tag}", f"after {tag}"} <= prod_notes
    finally:
        pitr.remove_copy(_drill_req(env, outcome), copy)
    assert not copy.exists()


def _drill_req(env, outcome) -> pitr_drill.PitrDrillRequest:
    return pitr_drill.PitrDrillRequest(
        backup_id=outcome.backup_id,
        server_id=env.server.id,
        label=outcome.label,
        production_dsn=env.dsn(),
        production_datadir=env.server.data_directory,
        pgbr=env.pgbr,
        scratch_root=env.root,
        evidence_root=env.root,
        os_user=env.cluster.os_user,
    )
