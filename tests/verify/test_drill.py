"""Restore drills against real PostgreSQL, pg_dump/pg_restore and Great Expectations."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hisops.backup.manifest import load_manifest
from hisops.verify import scratch
from hisops.verify.drill import DrillRequest, run_drill

from tests.verify.conftest import scratch_databases


def _request(pg, outcome, evidence_root: Path, **kw) -> DrillRequest:
    args = {
        "backup_id": outcome.backup_id,
        "database_id": outcome.target_id,
        "backup_dir": Path(outcome.path),
        "server_dsn": pg.dsn(),
        "evidence_root": evidence_root,
        "expected_manifest_sha256": outcome.manifest_sha256,
    }
    return DrillRequest(**{**args, **kw})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_drill_passes_with_private_evidence_and_no_scratch_left(
    pg, source_db, make_backup, evidence_root
):
    outcome = make_backup(source_db)
    result = run_drill(_request(pg, outcome, evidence_root))

    assert result.ok and result.fault == "none", result.failures
    assert result.restore_seconds and result.restore_seconds > 0
    manifest = load_manifest(outcome.path)
    # every table: columns + row count (exact) + primary key (+ FKs); plus the table-set check
    assert result.checks_total >= 3 * len(manifest.tables) + 1
    assert result.amcheck["checked"] > 0 and not result.amcheck["problems"]
    evidence = Path(result.evidence_path)
    assert evidence.name == "evidence.html" and evidence.is_file()  # our offline page
    assert "ward_bed" in evidence.read_text() and "通过 pass" in evidence.read_text()
    assert "ward_bed" in (evidence.parent / "index.html").read_text()  # GX Data Docs kept beside it
    assert (
        len(json.loads((evidence.parent / "gx_results.json").read_text())["expectations"])
        == result.checks_total
    )
    assert _mode(evidence) == 0o600 and _mode(evidence.parent) == 0o700
    assert all(_mode(p) == (0o700 if p.is_dir() else 0o600) for p in evidence.parent.rglob("*"))
    stored = json.loads((evidence.parent / "drill.json").read_text())
    assert stored["ok"] is True and stored["backup_id"] == outcome.backup_id
    assert pg.password not in "".join(
        p.read_text(errors="ignore") for p in evidence.parent.rglob("*.html")
    )
    assert not scratch.database_exists(pg.dsn(), result.scratch_db)
    assert scratch.is_scratch_name(result.scratch_db)


def test_flipped_byte_fails_naming_the_file_and_never_restores(
    pg, source_db, make_backup, evidence_root
):
    outcome = make_backup(source_db)
    victim = max(
        (p for p in (Path(outcome.path) / "dump").iterdir() if p.suffix == ".gz"),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))

    result = run_drill(_request(pg, outcome, evidence_root))

    assert not result.ok and result.fault == "backup"
    rel = victim.relative_to(outcome.path).as_posix()
    assert any(rel in line and "checksum" in line for line in result.failures), result.failures
    assert result.restore_seconds is None  # stopped before pg_restore
    assert not scratch.database_exists(pg.dsn(), result.scratch_db)
    assert (
        rel in Path(result.evidence_path).read_text()
    )  # the fallback evidence page names the file


def test_missing_row_fails_the_row_count_naming_the_table(
    pg, source_db, make_backup, evidence_root
):
    outcome = make_backup(source_db)
    seen: list[str] = []

    def lose_a_row(dsn: str) -> None:  # a leaf table: nothing references prescription_item
        seen.append(dsn)
        scratch.run_sql(
            dsn,
            [
                "DELETE FROM prescription_item WHERE item_id = (SELECT min(item_id) "
                "FROM prescription_item)"
            ],
        )

    result = run_drill(_request(pg, outcome, evidence_root, before_checks=lose_a_row))

    assert seen and not result.ok and result.fault == "backup"
    row_count = [c for c in result.failed_checks if c["kind"] == "row_count"]
    assert [c["table"] for c in row_count] == ["public.prescription_item"]
    expected = next(
        t.rows for t in load_manifest(outcome.path).tables if t.name == "prescription_item"
    )
    assert row_count[0]["observed"] == expected - 1
    assert any("public.prescription_item" in line for line in result.failures)
    assert not scratch.database_exists(pg.dsn(), result.scratch_db)  # dropped after a failing drill
    assert result.scratch_db not in scratch_databases(pg)


@pytest.mark.parametrize("mode", ["fast", "deep"])
def test_orphans_duplicates_and_nulls_are_found_when_constraints_do_not_guarantee(
    pg, source_db, make_backup, evidence_root, mode
):
    """Break the restored copy behind PostgreSQL's back (drop the constraint, then the data)."""
    outcome = make_backup(source_db, database_id="d1")
    from hisops.inventory.models import Database

    inventory_db = Database(id="d1", conn_id="x", critical_columns={"patient": ["name"]})

    def vandalize(dsn: str) -> None:
        scratch.run_sql(
            dsn,
            [
                "ALTER TABLE ward_bed DROP CONSTRAINT ward_bed_patient_id_fkey",
                "UPDATE ward_bed SET patient_id = -1 WHERE bed = 1",
                "ALTER TABLE ward_bed DROP CONSTRAINT ward_bed_pkey",
                "UPDATE ward_bed SET ward = 'W0', bed = 5 WHERE bed = 10",
                "ALTER TABLE patient ALTER COLUMN name DROP NOT NULL",
                "UPDATE patient SET name = NULL "
                "WHERE patient_id = (SELECT min(patient_id) FROM patient)",
            ],
        )

    result = run_drill(
        _request(
            pg, outcome, evidence_root, database=inventory_db, mode=mode, before_checks=vandalize
        )
    )

    failed = {(c["kind"], c["table"]) for c in result.failed_checks}
    assert ("foreign_key", "public.ward_bed") in failed
    assert ("primary_key", "public.ward_bed") in failed
    assert ("not_null", "public.patient") in failed
    assert any("schema differs" in line and "public.ward_bed" in line for line in result.failures)
    assert result.fault == "backup" and not scratch.database_exists(pg.dsn(), result.scratch_db)


def test_encrypted_backup_is_decrypted_for_the_drill(pg, source_db, make_backup, evidence_root):
    outcome = make_backup(source_db, secret="correct horse battery staple")
    assert outcome.encrypted

    result = run_drill(
        _request(pg, outcome, evidence_root, encryption_key="correct horse battery staple")
    )
    assert result.ok, result.failures
    assert "decrypt" in result.timings
    assert not list(Path(outcome.path).parent.glob(".hisops-drill-*"))  # decrypted copy removed

    no_key = run_drill(_request(pg, outcome, evidence_root))
    assert not no_key.ok and no_key.fault == "configuration"
    wrong = run_drill(_request(pg, outcome, evidence_root, encryption_key="wrong"))
    assert not wrong.ok and wrong.fault == "backup" and "decryption failed" in wrong.failures[0]


def test_unreachable_scratch_server_is_infrastructure_not_the_backups_fault(
    pg, source_db, make_backup, evidence_root
):
    outcome = make_backup(source_db)
    bad = pg.dsn().replace(f"port={pg.port}", "port=1")
    result = run_drill(_request(pg, outcome, evidence_root, server_dsn=bad))
    assert not result.ok and result.fault == "infrastructure"
    assert Path(result.evidence_path).is_file()


def _owner_and_acl(dsn: str) -> tuple[str, str]:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_get_userbyid(relowner), coalesce(relacl::text, '') FROM pg_class "
            "WHERE relname = 'ward_note'"
        )
        row = cur.fetchone()
    conn.close()
    return row


def test_deep_drill_restores_owners_and_grants_creating_missing_roles(
    pg, make_backup, evidence_root
):
    import uuid

    name, suffix = f"his_owned_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    owner, reader = f"his_owner_{suffix}", f"his_reader_{suffix}"
    pg.create_database(name)
    pg.execute(f"CREATE ROLE {owner} NOLOGIN; CREATE ROLE {reader} NOLOGIN")
    pg.execute(
        f"CREATE TABLE ward_note (id int PRIMARY KEY, note text); INSERT INTO ward_note "
        "SELECT i, 'n' || i FROM generate_series(1, 50) i; "
        f"ALTER TABLE ward_note OWNER TO {owner}; "
        f"GRANT SELECT ON ward_note TO {reader}",
        dbname=name,
    )
    outcome = make_backup(name)
    pg.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    pg.execute(f"DROP ROLE {owner}; DROP ROLE {reader}")  # a new server: the roles are not there
    seen: list[tuple[str, str]] = []

    deep = run_drill(
        _request(
            pg,
            outcome,
            evidence_root,
            mode="deep",
            before_checks=lambda dsn: seen.append(_owner_and_acl(dsn)),
        )
    )

    assert deep.ok, deep.failures
    assert seen[0][0] == owner and f"{reader}=r/" in seen[0][1]
    assert any("owners and privileges restored" in n for n in deep.notes)
    import psycopg2

    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)", (owner, reader))
        assert cur.fetchone()[0] == 0  # the roles created for the drill are gone again
    conn.close()
    fast = run_drill(
        _request(
            pg, outcome, evidence_root, before_checks=lambda dsn: seen.append(_owner_and_acl(dsn))
        )
    )
    assert fast.ok and seen[1][0] == pg.user  # fast: data only
