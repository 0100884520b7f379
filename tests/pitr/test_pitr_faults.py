"""Faults of the physical tier against real PostgreSQL and pgBackRest 2.45 (issue 8, "Faults"):
a repository file corrupted after the backup, a WAL segment missing from the archive, a
repository disk that is full, a backup killed mid-way (the worker, or pgBackRest itself). Each
breaks a cluster + repository of its own."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hisops.backup.trust import last_restorable
from hisops.pitr import drill as pitr_drill
from hisops.pitr import service
from hisops.pitr.pgbackrest import PgBackRestError
from hisops.restore.errors import RestoreRefused
from hisops.restore.pitr import AUTO, choose_physical
from hisops.runinfo import RunInfo
from hisops.verify.record import record_drill

from tests.pitr.conftest import drill_request

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

    result = pitr_drill.run_pitr_drill(
        drill_request(env, outcome.backup_id, outcome.label, tmp_path / "evidence")
    )

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

    result = pitr_drill.run_pitr_drill(
        drill_request(env, outcome.backup_id, outcome.label, tmp_path / "evidence")
    )

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


# --- a backup killed mid-way ---------------------------------------------------------------------

KILLED_RUN = RunInfo(dag_id="pitr_backup", run_id="scheduled__killed", triggering_user=None)
NEXT_RUN = RunInfo(dag_id="pitr_backup", run_id="scheduled__next", triggering_user=None)
WORKER = """
import pickle, sys
from hisops.catalog.repository import CatalogRepository
from hisops.pitr import service
url, server, pgbr, run = pickle.load(sys.stdin.buffer)
service.backup_server(CatalogRepository.from_url(url), server, "emr", pgbr, "full", run)
"""


def _backup_procs(stanza: str) -> dict[int, list[str]]:
    """pgBackRest processes of this stanza's backup (the main ``backup`` and its ``backup:local``
    workers; not ``archive-push``, which the server runs)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except (OSError, ValueError):
            continue
        ours = argv and argv[0].endswith("pgbackrest") and f"--stanza={stanza}" in argv
        if ours and argv[-1].startswith("backup"):
            found[int(entry.name)] = argv
    return found


def _copying(env) -> bool:
    """A partial backup set that already holds copied files of the data directory."""
    root = Path(env.server.pitr.repo.path) / "backup" / env.server.pitr.stanza
    return any(
        f.is_file() for label in _backup_sets(env) for f in (root / label / "pg_data").rglob("*")
    )


def _backup_sets(env) -> dict[str, bool]:
    """Backup directories in the repository: label → finished (has its ``backup.manifest``)."""
    root = Path(env.server.pitr.repo.path) / "backup" / env.server.pitr.stanza
    return {
        d.name: (d / "backup.manifest").is_file()
        for d in root.iterdir()
        if d.is_dir() and d.name[:8].isdigit()
    }


def _wait_for(what: str, ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _mid_backup(env, catalog) -> tuple[int, int, str]:
    """Wait until the catalog row is ``running``, pgBackRest's backup process exists and is
    copying files into its partial backup set; returns (backup id, main pgbackrest pid, label)."""
    stanza = env.server.pitr.stanza

    def started() -> bool:
        rows = catalog.backups_for("pg-main", states=("running",))
        procs = _backup_procs(stanza)
        return bool(rows and any(a[-1] == "backup" for a in procs.values()) and _copying(env))

    _wait_for("a running pgbackrest backup copying into its partial set", started)
    (running,) = catalog.backups_for("pg-main", states=("running",))
    (main,) = [pid for pid, argv in _backup_procs(stanza).items() if argv[-1] == "backup"]
    (label,) = _backup_sets(env)
    return running.id, main, label


def _assert_never_restorable(catalog, backup_id: int) -> None:
    records = catalog.backups_for("pg-main", include_deleted=True)
    with pytest.raises(RestoreRefused):
        choose_physical(records, backup_id, None, "pg-main")
    chosen = last_restorable(catalog, _inv(), "pg-main", kinds=("physical",))
    assert chosen is None or chosen.id != backup_id
    try:
        auto = choose_physical(records, AUTO, None, "pg-main")
    except RestoreRefused:
        return
    assert auto.id != backup_id


def test_a_worker_killed_mid_backup_is_failed_by_the_next_run_and_never_registered(
    own_pitr_env, catalog
):
    env = own_pitr_env
    _fill(env, rows=600_000)  # ~40 MB more: pgBackRest copies for a few seconds
    url = catalog.engine.url.render_as_string(hide_password=False)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        stdin=subprocess.PIPE,
        start_new_session=True,  # a worker's task: its own process group, pgbackrest inside it
    )
    worker.stdin.write(pickle.dumps((url, env.server, env.pgbr, KILLED_RUN)))
    worker.stdin.close()
    killed, _, partial = _mid_backup(env, catalog)
    os.killpg(worker.pid, signal.SIGSTOP)  # pin the moment: still copying, nothing finished
    assert _backup_sets(env) == {partial: False} and worker.poll() is None
    os.killpg(worker.pid, signal.SIGKILL)  # the worker dies with its process group
    assert worker.wait(timeout=60) == -signal.SIGKILL
    _wait_for(
        "the killed pgbackrest processes to go", lambda: not _backup_procs(env.server.pitr.stanza)
    )

    # nobody recorded anything: the row is still "running", and nothing may rely on it
    assert catalog.get_backup(killed).state == "running"
    _assert_never_restorable(catalog, killed)
    info = env.pgbr.info()
    assert info.backups == ()  # a partial (resumable) set is not a backup to pgBackRest either
    assert service.sync_catalog(catalog, env.server, info) == []  # no orphan for the partial set
    assert [r.id for r in catalog.backups_for("pg-main", include_deleted=True)] == [killed]

    outcome = service.backup_server(catalog, env.server, "emr", env.pgbr, "full", NEXT_RUN)

    row = catalog.get_backup(killed)
    assert row.state == "failed" and row.manifest is None and row.path is None
    assert "中断 interrupted" in (row.error or ""), row.error
    new = catalog.get_backup(outcome.backup_id)
    assert (new.state, new.manifest["label"], new.dag_run_id) == (
        "completed",
        outcome.label,
        NEXT_RUN.run_id,
    )
    # pgBackRest resumed the partial set (same label) or removed it and took a new one: either way
    # the repository holds exactly the one finished set the new row names
    assert [b.label for b in env.pgbr.info().backups] == [outcome.label]
    assert _backup_sets(env) == {outcome.label: True}
    rows = catalog.backups_for("pg-main", include_deleted=True)
    assert sorted((r.id, r.state) for r in rows) == [(killed, "failed"), (new.id, "completed")]
    catalog.mark_backup_verified(new.id)  # its drill passed
    assert last_restorable(catalog, _inv(), "pg-main", kinds=("physical",)).id == new.id
    _assert_never_restorable(catalog, killed)


def test_pgbackrest_killed_mid_backup_fails_the_backup_naming_the_signal(own_pitr_env, catalog):
    env = own_pitr_env
    _fill(env, rows=600_000)
    raised: list[BaseException] = []

    def backup() -> None:
        try:
            service.backup_server(catalog, env.server, "emr", env.pgbr, "full", RUN)
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever it raised
            raised.append(exc)

    waiter = threading.Thread(target=backup, daemon=True)
    waiter.start()
    backup_id, main, _ = _mid_backup(env, catalog)
    os.kill(main, signal.SIGKILL)  # pgbackrest itself, not hisops (which waits on it)
    waiter.join(timeout=300)
    assert not waiter.is_alive()
    _wait_for("pgbackrest's workers to go", lambda: not _backup_procs(env.server.pitr.stanza))

    (exc,) = raised
    assert isinstance(exc, PgBackRestError), repr(exc)
    assert "pgbackrest backup --type=full" in str(exc) and "SIGKILL" in str(exc), str(exc)
    row = catalog.get_backup(backup_id)
    assert row.state == "failed" and "killed by signal SIGKILL" in (row.error or ""), row.error
    assert catalog.backups_for("pg-main", states=("completed", "verified")) == []
    assert env.pgbr.info().backups == ()
    _assert_never_restorable(catalog, backup_id)


def test_an_exit_by_signal_is_named_whether_runuser_reports_it_or_python_does():
    from hisops.pitr.pgbackrest import exit_text

    assert (
        exit_text(-9) == "exit -9, 被信号 SIGKILL 终止 killed by signal SIGKILL (9)"
    )  # no runuser
    assert exit_text(137).endswith("killed by signal SIGKILL (9)")  # runuser, sudo, sh: 128 + 9
    assert (exit_text(1), exit_text(82), exit_text(124)) == ("exit 1", "exit 82", "exit 124")
