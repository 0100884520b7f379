"""db backups against real PostgreSQL 15 and pg_dump/pg_restore: proof, consistency, faults."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from hisops.backup import storage
from hisops.backup.crypto import decrypt_tree
from hisops.backup.dump import BackupError, DumpSpec, DumpToolError, backup_database
from hisops.backup.manifest import load_manifest, manifest_sha256, verify_files
from hisops.backup.storage import StorageError
from hisops.synth.generate import TABLES, generate
from sqlalchemy import text

from tests.backup.conftest import tmpfs

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _spec(pg, dbname: str, store: Path, **kw) -> DumpSpec:
    return DumpSpec(
        database_id="his_emr",
        system_id="emr",
        dsn=pg.dsn(dbname),
        storage=store,
        progress_seconds=0.5,
        **kw,
    )


def _counts(pg, dbname: str) -> dict[str, int]:
    with psycopg2.connect(pg.dsn(dbname)) as conn, conn.cursor() as cur:
        cur.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM public.{t})" for t in TABLES))
        row = cur.fetchone()
    conn.close()
    return {f"public.{t}": n for t, n in zip(TABLES, row, strict=True)}


def _restore(pg, backup_dir: str, target: str) -> None:
    env = {**os.environ, "PGPASSWORD": pg.password}
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            "-h",
            pg.host,
            "-p",
            str(pg.port),
            "-U",
            pg.user,
            "-d",
            target,
            "-j",
            "2",
            "--exit-on-error",
            f"{backup_dir}/dump",
        ],
        check=True,
        env=env,
        capture_output=True,
    )


def _only_final_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_backup_has_proof_and_restores_with_stock_pg_restore(pg, his_db, new_db, catalog, tmp_path):
    out = backup_database(_spec(pg, his_db, tmp_path / "b", exact_count_max_rows=10**9), catalog)
    backup_dir = Path(out.path)
    m = load_manifest(backup_dir)
    # manifest: source, tool, options, snapshot, files
    assert (m.kind, m.database_id, m.system_id, m.backup_id) == (
        "database",
        "his_emr",
        "emr",
        out.backup_id,
    )
    assert m.source.dbname == his_db and m.source.server_version_num // 10000 == 15
    assert m.tool.pg_dump_path == str(PG_BIN / "pg_dump") and "15." in m.tool.pg_dump_version
    assert (m.options.format, m.options.jobs, m.options.compress) == ("directory", 2, 5)
    assert m.snapshot.snapshot_id and m.snapshot.txid_snapshot and m.snapshot.lsn
    assert verify_files(backup_dir, m) == [] and {f.path for f in m.files} >= {"dump/toc.dat"}
    assert m.size_bytes == sum(f.size for f in m.files) == out.size_bytes
    # row counts: exact, equal to the source
    assert all(t.exact for t in m.tables) and m.table_rows() == _counts(pg, his_db)
    # schema fingerprint with PKs and FKs
    patient = m.schema_.tables["public.patient"]
    assert (
        patient.primary_key == ["patient_id"] and ("patient_id", "bigint", True) in patient.columns
    )
    assert any(
        fk.ref_table == "public.patient"
        for fk in m.schema_.tables["public.outpatient_visit"].foreign_keys
    )
    # catalog: completed with the manifest's hash; audit event
    record = catalog.get_backup(out.backup_id)
    assert record.state == "completed" and record.path == out.path
    assert (
        record.manifest_sha256 == manifest_sha256(backup_dir)
        and record.manifest["backup_id"] == out.backup_id
    )
    assert catalog.audit_events(limit=1)[0].action == "backup"
    # permissions: dirs 0700, files 0600; nothing else left in the database's directory
    for p in [backup_dir, *backup_dir.rglob("*")]:
        assert p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600), p
    assert _only_final_dirs(backup_dir.parent) == [backup_dir.name]
    # stock tools, no hisops: list and restore; counts equal the manifest
    listing = subprocess.run(
        [str(PG_BIN / "pg_restore"), "--list", str(backup_dir / "dump")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE DATA public patient" in listing
    target = new_db("restored")
    _restore(pg, out.path, target)
    assert _counts(pg, target) == m.table_rows()


def test_fingerprint_is_stable_and_sees_schema_changes(pg, his_db, catalog, tmp_path):
    first = load_manifest(backup_database(_spec(pg, his_db, tmp_path / "b"), catalog).path)
    second = load_manifest(backup_database(_spec(pg, his_db, tmp_path / "b"), catalog).path)
    assert first.schema_.fingerprint_sha256 == second.schema_.fingerprint_sha256
    pg.execute("ALTER TABLE patient ADD COLUMN nickname text", his_db)
    third = load_manifest(backup_database(_spec(pg, his_db, tmp_path / "b"), catalog).path)
    assert third.schema_.fingerprint_sha256 != first.schema_.fingerprint_sha256
    assert ("nickname", "text", False) in third.schema_.tables["public.patient"].columns


def test_counts_come_from_the_dumped_snapshot_under_concurrent_writes(
    pg, his_db, new_db, catalog, tmp_path
):
    pg.execute("CREATE TABLE ward_event (id bigserial PRIMARY KEY, note text NOT NULL)", his_db)
    stop = threading.Event()
    inserted = [0]

    def writer() -> None:
        conn = psycopg2.connect(pg.dsn(his_db))
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO ward_event (note) VALUES ('查房 ward round')")
                cur.execute(
                    "UPDATE patient SET name = name "
                    "WHERE patient_id = (SELECT min(patient_id) FROM patient)"
                )
                inserted[0] += 1
        conn.close()

    def ward_rows(dbname: str) -> int:
        with psycopg2.connect(pg.dsn(dbname)) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM ward_event")
            n = cur.fetchone()[0]
        conn.close()
        return n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        out = backup_database(_spec(pg, his_db, tmp_path / "b", jobs=2), catalog)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    m = load_manifest(out.path)
    target = new_db("restored")
    _restore(pg, out.path, target)
    manifest_rows = m.table_rows()
    assert inserted[0] > 0 and ward_rows(target) == manifest_rows["public.ward_event"] > 0
    assert (
        ward_rows(his_db) > manifest_rows["public.ward_event"]
    )  # later writes are not in the backup
    assert {k: v for k, v in manifest_rows.items() if k != "public.ward_event"} == _counts(
        pg, target
    )


def test_large_tables_get_flagged_estimates(pg, his_db, catalog, tmp_path):
    m = load_manifest(
        backup_database(_spec(pg, his_db, tmp_path / "b", exact_count_max_rows=100), catalog).path
    )
    rows = {t.qualified: t for t in m.tables}
    real = _counts(pg, his_db)
    assert (
        rows["public.department"].exact
        and rows["public.department"].rows == real["public.department"]
    )
    big = rows["public.lab_result"]
    assert not big.exact and big.rows > 100
    assert (
        abs(big.rows - real["public.lab_result"]) <= real["public.lab_result"] * 0.2
    )  # reltuples after ANALYZE


def test_encrypted_backup_round_trip(pg, his_db, new_db, catalog, tmp_path):
    key = "医院备份密钥 backup key 2026"
    spec = _spec(
        pg, his_db, tmp_path / "b", encryption_secret=key, encryption_conn_id="hisops_backup_key"
    )
    out = backup_database(spec, catalog)
    m = load_manifest(out.path)
    assert (
        m.encryption.key_conn_id == "hisops_backup_key"
        and m.encryption.algorithm == "AES-256-GCM-STREAM/1"
    )
    assert all(f.path.endswith(".enc") and f.plain_size is not None for f in m.files)
    assert verify_files(out.path, m) == []
    assert key not in Path(out.path, "manifest.json").read_text()
    plain = tmp_path / "plain"
    decrypt_tree(Path(out.path) / "dump", plain / "dump", key)
    subprocess.run(
        [str(PG_BIN / "pg_restore"), "--list", str(plain / "dump")], check=True, capture_output=True
    )
    target = new_db("restored")
    _restore(pg, str(plain), target)
    assert _counts(pg, target) == m.table_rows()


def test_pg_dump_older_than_server_is_a_clear_error(pg, his_db, catalog, tmp_path):
    bindir = tmp_path / "oldbin"
    bindir.mkdir()
    (bindir / "pg_dump").write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.22'\n")
    (bindir / "pg_dump").chmod(0o755)
    with pytest.raises(
        DumpToolError, match=r"pg_dump 12 .* is older than the server \(15\."
    ) as err:
        backup_database(_spec(pg, his_db, tmp_path / "b", pg_bindir=str(bindir)), catalog)
    assert "pg_bindir: /usr/lib/postgresql/15/bin" in str(err.value)
    [record] = catalog.backups_for("his_emr")
    assert record.state == "failed" and "older than the server" in record.error
    assert _only_final_dirs(tmp_path / "b" / "his_emr") == []


def test_unwritable_backup_directory_fails_before_pg_dump(pg, his_db, catalog, tmp_path):
    store = tmp_path / "ro"
    with tmpfs(store, read_only=True) as mounted:
        if not mounted:  # no mount privilege: a path under a regular file cannot be written either
            store = tmp_path / "file"
            store.write_text("not a directory")
        with pytest.raises(StorageError, match="backup directory"):
            backup_database(_spec(pg, his_db, store), catalog)
    [record] = catalog.backups_for("his_emr")
    assert record.state == "failed" and "StorageError" in record.error


def test_full_backup_directory_is_detected_before_pg_dump(
    pg, his_db, catalog, tmp_path, monkeypatch
):
    store = tmp_path / "small"
    started = []
    monkeypatch.setattr("hisops.backup.dump.start_pg_dump", lambda *a: started.append(a))
    with tmpfs(store, size="1m") as mounted:
        reserve = (
            0 if mounted else storage.shutil.disk_usage(tmp_path).free
        )  # fallback: threshold says full
        with pytest.raises(StorageError, match="not enough free space"):
            backup_database(_spec(pg, his_db, store, reserve_bytes=reserve), catalog)
    assert started == []
    assert catalog.backups_for("his_emr")[0].state == "failed"


def test_disk_filling_up_during_pg_dump_fails_cleanly(pg, his_db, catalog, tmp_path, monkeypatch):
    store = tmp_path / "small"
    monkeypatch.setattr(
        "hisops.backup.storage.estimate_bytes", lambda *a: 0
    )  # estimate too optimistic
    with tmpfs(store, size="256k") as mounted:
        if not mounted:
            pytest.skip("needs a tiny tmpfs (mount not permitted here)")
        with pytest.raises(BackupError, match="pg_dump 失败 failed.*No space left"):
            backup_database(_spec(pg, his_db, store, reserve_bytes=0), catalog)
        assert _only_final_dirs(store / "his_emr") == []
    assert catalog.backups_for("his_emr")[0].state == "failed"


def test_source_stopped_mid_backup_then_retry_succeeds(throwaway_cluster, catalog, tmp_path):
    src = throwaway_cluster
    src.create_database("his")
    generate(src.dsn("his"), 0.4, seed=3, log=lambda _m: None)
    store = tmp_path / "b"
    spec = DumpSpec(
        database_id="his_emr",
        system_id="emr",
        dsn=src.dsn("his"),
        storage=store,
        jobs=1,
        compress=9,
        progress_seconds=0.5,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            backup_database(spec, catalog)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not list(store.glob("his_emr/.partial-*/dump/*.dat.gz")) and time.monotonic() < deadline:
        time.sleep(0.02)
    src.stop("fast")
    thread.join(120)
    assert len(errors) == 1 and isinstance(errors[0], BackupError), errors
    assert "pg_dump" in str(errors[0]) or "cannot connect" in str(errors[0])
    [record] = catalog.backups_for("his_emr")
    assert record.state == "failed" and record.path is None
    assert catalog.backups_for("his_emr", states=["completed", "verified"]) == []
    assert _only_final_dirs(store / "his_emr") == []  # no .partial-*, no lock, no backup
    src.start()
    out = backup_database(spec, catalog)
    assert catalog.get_backup(out.backup_id).state == "completed"
    assert _only_final_dirs(store / "his_emr") == [Path(out.path).name]


def test_leftovers_of_a_crashed_run_are_removed_and_recorded(pg, his_db, catalog, tmp_path):
    root = tmp_path / "b" / "his_emr"
    root.mkdir(parents=True)
    crashed = catalog.register_backup_start("his_emr", "emr", "database", None)
    (root / f".partial-{crashed}" / "dump").mkdir(parents=True)
    (root / f".partial-{crashed}" / "dump" / "toc.dat").write_bytes(b"half")
    (root / f".partial-{crashed}.lock").touch()  # lock file left behind, nobody holds it
    vanished = catalog.register_backup_start(
        "his_emr", "emr", "database", None
    )  # died before mkdir
    with catalog.engine.begin() as conn:
        conn.execute(
            text("UPDATE hisops.backup SET started_at = now() - interval '13 hours' WHERE id = :i"),
            {"i": vanished},
        )
    busy = catalog.register_backup_start("his_emr", "emr", "database", None)
    (root / f".partial-{busy}").mkdir()
    fd = os.open(root / f".partial-{busy}.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a run that is still going: must be left alone
    try:
        out = backup_database(_spec(pg, his_db, tmp_path / "b"), catalog)
    finally:
        os.close(fd)
    assert (
        not (root / f".partial-{crashed}").exists()
        and not (root / f".partial-{crashed}.lock").exists()
    )
    assert (root / f".partial-{busy}").is_dir()
    assert (
        catalog.get_backup(crashed).state == "failed"
        and "interrupted" in catalog.get_backup(crashed).error
    )
    assert catalog.get_backup(busy).state == "running"
    assert (
        catalog.get_backup(vanished).state == "failed"
        and "after 12 h" in catalog.get_backup(vanished).error
    )
    assert catalog.get_backup(out.backup_id).state == "completed"


def test_globals_saved_without_passwords_unless_encrypted(pg, his_db, catalog, tmp_path):
    from hisops.backup.crypto import decrypt_file

    pg.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'his_globals_t') THEN "
        "CREATE ROLE his_globals_t LOGIN PASSWORD 'pw-globals-test'; END IF; END $$"
    )
    plain = backup_database(_spec(pg, his_db, tmp_path / "p"), catalog)
    m = load_manifest(plain.path)
    assert m.globals_.path == "globals/globals.sql" and not m.globals_.role_passwords
    assert "his_globals_t" in m.globals_.roles and "globals/globals.sql" in {
        f.path for f in m.files
    }
    text = (Path(plain.path) / m.globals_.path).read_text()
    assert "CREATE ROLE his_globals_t;" in text and "SCRAM-SHA-256" not in text
    assert oct((Path(plain.path) / m.globals_.path).stat().st_mode & 0o777) == "0o600"

    key = "globals key"
    spec = _spec(pg, his_db, tmp_path / "e", encryption_secret=key, encryption_conn_id="k")
    enc = backup_database(spec, catalog)
    me = load_manifest(enc.path)
    assert me.globals_.path == "globals/globals.sql.enc" and me.globals_.role_passwords
    decrypt_file(Path(enc.path) / me.globals_.path, tmp_path / "g.sql", key)
    assert "SCRAM-SHA-256" in (tmp_path / "g.sql").read_text()


def test_files_hashed_while_written_are_rehashed_when_a_writer_came_back(tmp_path):
    """ClosedFileHasher (checksums overlapping pg_dump): a digest taken at the first close is
    dropped when the file is written again later; an untouched file keeps its digest."""
    import hashlib

    from hisops.backup.dump import hashing_closed_files

    folder = tmp_path / "dump"
    with hashing_closed_files(folder, True) as hasher:
        assert hasher is not None and hasher.usable
        (folder / "kept.dat").write_bytes(b"a" * 100_000)
        (folder / "rewritten.dat").write_bytes(b"b" * 100_000)
        deadline = time.monotonic() + 60
        while len(hasher.done) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(hasher.done) == {"kept.dat", "rewritten.dat"}
        with open(folder / "rewritten.dat", "r+b") as fh:  # same size, new content
            fh.write(b"c" * 10)
        hasher.finish()
        digests = hasher.digests()
    kept = folder / "kept.dat"
    assert digests[kept] == (100_000, hashlib.sha256(kept.read_bytes()).hexdigest())
    rewritten = folder / "rewritten.dat"
    # either dropped (hashed again after the dump) or re-hashed after its last close: never the
    # digest of the first write
    if rewritten in digests:
        assert digests[rewritten] == (100_000, hashlib.sha256(rewritten.read_bytes()).hexdigest())
    assert digests.get(rewritten, (0, ""))[1] != hashlib.sha256(b"b" * 100_000).hexdigest()
