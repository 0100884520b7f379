"""Faults of the physical tier against real PostgreSQL and pgBackRest 2.45 (issue 8, "Faults"):
a repository file corrupted after the backup, a WAL segment missing from the archive, a
repository disk that is full. Each breaks a cluster + repository of its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hisops.backup.trust import last_restorable
from hisops.pitr import drill as pitr_drill
from hisops.pitr import service
from hisops.runinfo import RunInfo
from hisops.verify.record import record_drill

RUN = RunInfo(dag_id="pitr_backup", run_id="manual__faults", triggering_user="tester")
DRILL_RUN = RunInfo(dag_id="backup_verification", run_id="manual__faults", triggering_user="t")


def _inv():
    from hisops.inventory.loader import load_inventory

    return load_inventory(
        Path(__file__).resolve().parents[2] / "inventory" / "hospital.example.yaml"
    )


def _fill(env, table: str = "ward_log", rows: int = 200_000) -> None:
    env.cluster.execute(
        f"CREATE TABLE {table} AS SELECT i, md5(i::text) AS h FROM generate_series(1, {rows}) i"
    )
    env.cluster.execute("CHECKPOINT")


def _request(env, outcome, tmp_path: Path) -> pitr_drill.PitrDrillRequest:
    return pitr_drill.PitrDrillRequest(
        backup_id=outcome.backup_id,
        server_id="pg-main",
        label=outcome.label,
        production_dsn=env.dsn(),
        production_datadir=str(env.cluster.datadir),
        pgbr=env.pgbr,
        scratch_root=env.root / "scratch",
        evidence_root=tmp_path / "evidence",
        os_user=env.cluster.os_user,
    )


def _backup_dir(env, label: str) -> Path:
    return Path(env.server.pitr.repo.path) / "backup" / env.server.pitr.stanza / label


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + 64, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.long
def test_a_corrupted_repository_file_fails_the_drill_naming_the_file(
    own_pitr_env, catalog, tmp_path
):
    env = own_pitr_env
    _fill(env)
    with env.cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_relation_filepath('ward_log')")
        relpath = cur.fetchone()[0]  # base/<db oid>/<relfilenode>
    conn.close()
    outcome = service.backup_server(catalog, env.server, "emr", env.pgbr, "full", RUN)
    catalog.mark_backup_verified(outcome.backup_id)  # an earlier drill had passed
    stored = sorted((_backup_dir(env, outcome.label) / "pg_data").glob(f"{relpath}*"))
    assert stored, f"{relpath} not in the backup set"
    _flip_bytes(stored[0])  # the table's file in the repository, after the backup

    result = pitr_drill.run_pitr_drill(_request(env, outcome, tmp_path))

    assert not result.ok and result.fault == "backup", result.failures
    assert any(relpath in line for line in result.failures), result.failures
    assert not any("point proven" in n for n in result.notes)
    assert not list((env.root / "scratch").iterdir())
    recorded = record_drill(catalog, _inv(), {**result.as_dict(), "system_id": "emr"}, DRILL_RUN)
    assert (recorded["ok"], recorded["backup_state"]) == (False, "failed")
    record = catalog.get_backup(outcome.backup_id)
    assert record.state == "failed" and relpath in (record.error or "")
    assert last_restorable(catalog, _inv(), "pg-main", kinds=("physical",)) is None


def _archived_segments(env) -> list[str]:
    archive = Path(env.server.pitr.repo.path) / "archive" / env.server.pitr.stanza
    return sorted(p.name[:24] for p in archive.rglob("*") if len(p.name) > 24 and p.is_file())


def _archive_file(env, segment: str) -> Path:
    archive = Path(env.server.pitr.repo.path) / "archive" / env.server.pitr.stanza
    (found,) = [p for p in archive.rglob(f"{segment}-*") if p.is_file()]
    return found


def _switch_and_wait(env, timeout: float = 60) -> str:
    with env.cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_walfile_name(pg_switch_wal())")
        segment = cur.fetchone()[0]
    conn.close()
    deadline = time.monotonic() + timeout
    while segment not in _archived_segments(env):
        assert time.monotonic() < deadline, f"{segment} not archived"
        time.sleep(0.3)
    return segment


@pytest.mark.long
def test_a_missing_wal_segment_fails_the_pitr_drill_naming_the_segment(
    own_pitr_env, catalog, tmp_path
):
    env = own_pitr_env
    outcome = service.backup_server(catalog, env.server, "emr", env.pgbr, "full", RUN)
    wal_stop = catalog.get_backup(outcome.backup_id).manifest["wal"]["stop"]
    _fill(env, "after_backup", 50_000)  # WAL the drill must replay to reach its target
    lost = _switch_and_wait(env)
    assert lost > wal_stop
    _fill(env, "later", 1_000)
    _switch_and_wait(env)
    _archive_file(env, lost).unlink()  # gone from the archive, needed to reach any later target

    result = pitr_drill.run_pitr_drill(_request(env, outcome, tmp_path))

    assert not result.ok and result.fault == "backup", result.failures
    assert any(lost in line and "missing" in line for line in result.failures), result.failures
    assert not any("point proven" in n for n in result.notes)  # no false "reached the point"
    assert not list((env.root / "scratch").iterdir())


@pytest.mark.long
def test_a_full_repository_disk_fails_the_backup_clearly_and_registers_nothing(
    full_disk_pitr_env, catalog
):
    env = full_disk_pitr_env
    # initdb's ~20 MB of catalogs were never WAL-archived (the archive still has room) and do not
    # fit the 2 MiB repository; a FILE_COPY database adds 7 MB more with almost no WAL
    env.cluster.execute("CREATE DATABASE his_full STRATEGY FILE_COPY")

    with pytest.raises(Exception, match="repository disk full") as raised:
        service.backup_server(catalog, env.server, "emr", env.pgbr, "full", RUN)

    assert "pgbackrest backup" in str(raised.value) and "备份仓库磁盘已满" in str(raised.value)
    assert env.server.pitr.repo.path in str(raised.value)
    (row,) = catalog.backups_for("pg-main", include_deleted=True)
    assert row.state == "failed" and "repository disk full" in (row.error or "")
    assert env.pgbr.info().backups == ()  # pgBackRest itself lists no backup either
