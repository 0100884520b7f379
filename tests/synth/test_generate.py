"""The synthetic HIS generator against a real PostgreSQL (the session ``pg`` cluster)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import hisops.synth.generate as gen
import psycopg2
import pytest
from hisops.devenv.pgcluster import PgCluster

SCALE = 0.01
SEED = 42
CJK_NAME = re.compile(r"^[\u4e00-\u9fff]{2,4}$")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@dataclass
class Generated:
    dbname: str
    counts: dict[str, int]
    log: list[str]


def query(pg: PgCluster, dbname: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(pg.dsn(dbname))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(pg: PgCluster, dbname: str, sql: str):
    return query(pg, dbname, sql)[0][0]


def make_db(pg: PgCluster, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    pg.create_database(name)
    return name


def fingerprint(pg: PgCluster, dbname: str, tables: tuple[str, ...] = gen.TABLES) -> dict[str, str]:
    """md5 of an ordered text dump of each table."""
    parts = ", ".join(
        f"(SELECT md5(string_agg(t::text, ',' ORDER BY t.{gen.PRIMARY_KEYS[name]})) FROM {name} t)"
        for name in tables
    )
    return dict(zip(tables, query(pg, dbname, f"SELECT {parts}")[0], strict=True))


@pytest.fixture(scope="module")
def generated(pg: PgCluster) -> Iterator[Generated]:
    """One database generated at scale 0.01 with the default seed, shared by the module."""
    dbname = make_db(pg, "synth")
    log: list[str] = []
    counts = gen.generate(pg.dsn(dbname), scale=SCALE, seed=SEED, log=log.append)
    yield Generated(dbname, counts, log)
    pg.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# --- counts --------------------------------------------------------------------------------------
def test_counts_match_expected(pg: PgCluster, generated: Generated) -> None:
    expected = gen.expected_counts(SCALE)
    assert generated.counts == expected
    assert expected["patient"] == 250 and expected["outpatient_visit"] == 800
    assert all(n >= 5 for n in expected.values())
    for table, n in expected.items():
        assert scalar(pg, generated.dbname, f"SELECT count(*) FROM {table}") == n


def test_expected_counts_rounding_and_minimums() -> None:
    tiny = gen.expected_counts(0.0001)
    assert tiny["patient"] == 5 and tiny["doctor"] == 24
    assert tiny["department"] == gen.FIXED_COUNTS["department"]
    assert gen.expected_counts(2)["patient"] == 2 * gen.BASE_ROWS["patient"]
    assert gen.scaled_rows(10, 0.25) == 5 and gen.scaled_rows(100, 0.025, minimum=1) == 3
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            gen.expected_counts(bad)


def test_progress_is_logged(generated: Generated) -> None:
    assert any("% loaded" in line and "rows/s" in line for line in generated.log)
    assert generated.log[-1].startswith("synth: done in")


# --- structure -----------------------------------------------------------------------------------
def test_primary_keys_present_and_unique(pg: PgCluster, generated: Generated) -> None:
    pks = dict(
        query(
            pg,
            generated.dbname,
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'p'",
        )
    )
    for table, column in gen.PRIMARY_KEYS.items():
        assert pks[table] == f"PRIMARY KEY ({column})"
        total, distinct = query(
            pg, generated.dbname, f"SELECT count(*), count(DISTINCT {column}) FROM {table}"
        )[0]
        assert total == distinct


def test_foreign_keys_present_and_validated(pg: PgCluster, generated: Generated) -> None:
    rows = query(
        pg,
        generated.dbname,
        "SELECT conrelid::regclass::text, confrelid::regclass::text, convalidated "
        "FROM pg_constraint WHERE contype = 'f'",
    )
    assert len(rows) == 25
    assert all(valid for _, _, valid in rows)
    pairs = {(child, parent) for child, parent, _ in rows}
    for pair in [
        ("outpatient_visit", "patient"),
        ("prescription", "outpatient_visit"),
        ("prescription_item", "prescription"),
        ("admission", "patient"),
        ("medical_order", "admission"),
        ("lab_result", "outpatient_visit"),
        ("lab_result", "admission"),
        ("medical_record_document", "admission"),
        ("medical_record_document", "patient"),
    ]:
        assert pair in pairs


def test_tables_and_comments(pg: PgCluster, generated: Generated) -> None:
    comments = dict(
        query(
            pg,
            generated.dbname,
            "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
        )
    )
    assert set(comments) == set(gen.TABLES)
    assert comments["patient"].startswith("患者") and "Patient" in comments["patient"]
    assert "999" in scalar(pg, generated.dbname, "SELECT col_description('patient'::regclass, 6)")
    assert (
        scalar(
            pg,
            generated.dbname,
            "SELECT count(*) FROM pg_proc WHERE pronamespace::regnamespace::text LIKE 'pg_temp%'",
        )
        == 0
    )


def test_sequences_continue_after_generated_ids(pg: PgCluster, generated: Generated) -> None:
    assert (
        scalar(
            pg, generated.dbname, "SELECT nextval(pg_get_serial_sequence('patient', 'patient_id'))"
        )
        == 251
    )


# --- content -------------------------------------------------------------------------------------
def id_check_char(first17: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def test_patients_are_obviously_fake_and_well_formed(pg: PgCluster, generated: Generated) -> None:
    rows = query(
        pg,
        generated.dbname,
        "SELECT name, gender, birth_date, id_card_no, phone, address FROM patient",
    )
    for name, gender, birth, id_card, phone, address in rows:
        assert CJK_NAME.match(name), name
        assert len(id_card) == 18 and id_card.startswith("999")
        assert id_card[6:14] == birth.strftime("%Y%m%d")
        assert int(id_card[16]) % 2 == (1 if gender == "男" else 0)
        assert id_card[17] == id_check_char(id_card[:17])
        assert len(phone) == 11 and phone.startswith("100")
        assert address.startswith("虚拟省")


def test_rows_are_consistent_across_tables(pg: PgCluster, generated: Generated) -> None:
    checks = {
        "prescription patient = visit patient": (
            "SELECT count(*) FROM prescription p JOIN outpatient_visit v USING (visit_id) "
            "WHERE p.patient_id <> v.patient_id OR p.prescribed_at < v.visit_time"
        ),
        "visit department = doctor department": (
            "SELECT count(*) FROM outpatient_visit v JOIN doctor d USING (doctor_id) "
            "WHERE v.department_id <> d.department_id"
        ),
        "order patient and times within the stay": (
            "SELECT count(*) FROM medical_order o JOIN admission a USING (admission_id) "
            "WHERE o.patient_id <> a.patient_id OR o.start_time < a.admit_time "
            "OR o.stop_time > coalesce(a.discharge_time, timestamp '2026-01-01')"
        ),
        "lab result patient matches its visit or admission": (
            "SELECT count(*) FROM lab_result r LEFT JOIN outpatient_visit v USING (visit_id) "
            "LEFT JOIN admission a USING (admission_id) "
            "WHERE r.patient_id <> coalesce(v.patient_id, a.patient_id)"
        ),
        "document patient = admission patient": (
            "SELECT count(*) FROM medical_record_document d JOIN admission a USING (admission_id) "
            "WHERE d.patient_id <> a.patient_id"
        ),
        "patients born before their visits": (
            "SELECT count(*) FROM outpatient_visit v JOIN patient p USING (patient_id) "
            "WHERE v.visit_time < p.birth_date"
        ),
        "every admission has an admission note": (
            "SELECT count(*) FROM admission a WHERE NOT EXISTS ("
            "SELECT FROM medical_record_document d "
            "WHERE d.admission_id = a.admission_id AND d.doc_type = '入院记录')"
        ),
    }
    for what, sql in checks.items():
        assert scalar(pg, generated.dbname, sql) == 0, what


def test_documents_are_chinese_text(pg: PgCluster, generated: Generated) -> None:
    low, high, types = query(
        pg,
        generated.dbname,
        "SELECT min(length(content)), max(length(content)), "
        "count(DISTINCT doc_type) FROM medical_record_document",
    )[0]
    assert low >= 50 and high <= 1000 and types >= 5
    content = scalar(
        pg, generated.dbname, "SELECT content FROM medical_record_document WHERE document_id = 1"
    )
    assert content.startswith("患者") and "入院" in content
    assert (
        scalar(pg, generated.dbname, "SELECT avg(length(content)) FROM medical_record_document")
        > 150
    )


# --- determinism and safety -----------------------------------------------------------------------
def test_same_seed_same_data_regardless_of_chunking(
    pg: PgCluster, generated: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gen, "DEFAULT_CHUNK_ROWS", 97)
    monkeypatch.setattr(gen, "CHUNK_ROWS", {})
    other = make_db(pg, "synth_same")
    try:
        gen.generate(pg.dsn(other), scale=SCALE, seed=SEED, log=lambda _: None, jobs=3)
        assert fingerprint(pg, other) == fingerprint(pg, generated.dbname)
    finally:
        pg.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_other_seed_other_data(pg: PgCluster, generated: Generated, new_db) -> None:
    other = new_db("synth_seed")
    gen.generate(pg.dsn(other), scale=SCALE, seed=SEED + 1, log=lambda _: None)
    mine, theirs = fingerprint(pg, generated.dbname), fingerprint(pg, other)
    assert mine["patient"] != theirs["patient"] and mine["lab_result"] != theirs["lab_result"]
    assert mine["drug"] == theirs["drug"]


def test_refuses_database_with_his_tables(pg: PgCluster, generated: Generated, new_db) -> None:
    with pytest.raises(ValueError, match="database already has HIS tables; use a new database"):
        gen.generate(pg.dsn(generated.dbname), scale=SCALE, log=lambda _: None)
    assert scalar(pg, generated.dbname, "SELECT count(*) FROM patient") == 250
    partial = new_db("synth_partial")
    pg.execute("CREATE TABLE patient (patient_id bigint)", partial)
    with pytest.raises(ValueError, match=gen.EXISTS_MESSAGE):
        gen.generate(pg.dsn(partial), scale=SCALE, log=lambda _: None)


@pytest.mark.parametrize("seed", [True, 2**31, -(2**31) - 1, "42"])
def test_rejects_bad_seed(seed) -> None:
    with pytest.raises(ValueError, match="seed"):
        gen.generate("dbname=unused", scale=SCALE, seed=seed)


def test_render_placeholders() -> None:
    assert (
        gen.render("SELECT :lo::bigint, 'x:y', a::text", {"lo": 7})
        == "SELECT 7::bigint, 'x:y', a::text"
    )
    with pytest.raises(KeyError, match=":missing"):
        gen.render("SELECT :missing", {})


def test_sql_sections_cover_every_table() -> None:
    assert set(gen.sql_sections("data.sql")) == set(gen.BASE_ROWS)
    keys = {
        name.split()[1] for name in gen.sql_sections("constraints.sql") if name.startswith("keys ")
    }
    assert keys == set(gen.TABLES)
