"""Scratch-database naming and its drop guard; the planned GX suite (no GX import needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hisops.backup.manifest import load_manifest
from hisops.inventory.models import Database
from hisops.restore.names import STAGING_RE, staging_name
from hisops.verify import scratch
from hisops.verify.expectations import build_plan


def test_scratch_names_are_unmistakable_and_fit_postgres():
    name = scratch.scratch_name(
        "his_outpatient-very-long-database-id",
        1234567890,
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert name.startswith("hisops_drill_his_outpatient_very_1234567890_260102030405_")
    assert len(name.encode()) <= 63 and re.fullmatch(r"[a-z0-9_]+", name)
    assert scratch.is_scratch_name(name)
    assert scratch.created_at(name) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert scratch.scratch_name("d1", 7) != scratch.scratch_name("d1", 7)  # random suffix
    staging = staging_name("his_emr", 3)
    assert scratch.is_scratch_name(staging, STAGING_RE) and not scratch.is_scratch_name(staging)


@pytest.mark.parametrize(
    "name",
    [
        "his_emr",
        "postgres",
        "template1",
        "hisops_catalog",
        "hisops_drill_",
        "hisops_drill_his_emr",
        "hisops_drill_x_1_2601020304_abcd",
        "xhisops_drill_d1_1_260102030405_abcd",
        "hisops_drill_d1_1_260102030405_abcd;x",
    ],
)
def test_guard_refuses_anything_but_a_scratch_name(name):
    with pytest.raises(scratch.ScratchGuardError):
        scratch.assert_droppable(name)


def test_drop_refuses_production_and_leaves_it_alone(pg, new_db):
    prod = new_db("his_prod")
    with pytest.raises(scratch.ScratchGuardError):
        scratch.drop_database(pg.dsn(), prod)
    with pytest.raises(scratch.ScratchGuardError):  # a staging name is not a drill name either
        scratch.drop_database(pg.dsn(), staging_name("d1", 1))
    assert scratch.database_exists(pg.dsn(), prod)


def test_stale_scratch_databases_are_swept_fresh_ones_kept(pg):
    old = scratch.scratch_name("sweep", 1, datetime.now(UTC) - timedelta(days=2))
    fresh = scratch.scratch_name("sweep", 2)
    for name in (old, fresh):
        scratch.create_database(pg.dsn(), name)
    try:
        assert old in scratch.drop_stale(pg.dsn(), timedelta(hours=12))
        assert not scratch.database_exists(pg.dsn(), old) and scratch.database_exists(
            pg.dsn(), fresh
        )
    finally:
        scratch.drop_database(pg.dsn(), fresh)


def test_plan_from_manifest_and_inventory(source_db, make_backup):
    manifest = load_manifest(make_backup(source_db).path)
    db = Database(
        id="d1",
        conn_id="x",
        critical_tables=["patient", "no_such_table"],
        critical_columns={"patient": ["name", "id_card_no", "ghost"]},
        expectations={
            "patient": [
                {
                    "type": "expect_column_values_to_match_regex",
                    "column": "id_card_no",
                    "regex": "^[0-9]{17}[0-9X]$",
                }
            ]
        },
    )
    plan = build_plan(manifest, db)

    ward = plan.table("public.ward_bed")
    kinds = [(e.kind, e.type) for e in ward.expectations]
    assert ("columns", "expect_table_columns_to_match_ordered_list") in kinds
    assert ("row_count", "expect_table_row_count_to_equal") in kinds
    assert ("primary_key", "unexpected_rows_expectation") in kinds  # fast: guarded duplicate scan
    assert ("foreign_key", "unexpected_rows_expectation") in kinds
    rows = next(e for e in ward.expectations if e.kind == "row_count").kwargs["value"]
    assert rows == 40
    patient = {
        (e.kind, e.type, e.kwargs.get("column")) for e in plan.table("public.patient").expectations
    }
    assert ("not_null", "expect_column_values_to_not_be_null", "name") in patient
    assert ("inventory", "expect_column_values_to_match_regex", "id_card_no") in patient
    assert any("no_such_table" in p for p in plan.problems)
    assert any("public.patient.ghost" in p for p in plan.problems)
    assert [e.kind for e in plan.database] == ["tables"]
    # every SQL check contains a JOIN, so GX substitutes {batch} as a bare "(subquery)" we alias
    # ourselves
    queries = [
        e.kwargs["unexpected_rows_query"]
        for t in plan.tables
        for e in t.expectations
        if e.type == "unexpected_rows_expectation"
    ] + [plan.database[0].kwargs["unexpected_rows_query"]]
    assert queries and all(" JOIN " in q and "{batch} AS c" in q for q in queries)


def test_deep_plan_uses_native_uniqueness_and_plain_anti_joins(source_db, make_backup):
    plan = build_plan(load_manifest(make_backup(source_db).path), mode="deep")
    ward = {e.kind: e for e in plan.table("public.ward_bed").expectations}
    assert ward["primary_key"].type == "expect_compound_columns_to_be_unique"
    assert ward["primary_key"].kwargs == {"column_list": ["ward", "bed"]}
    assert {
        e.type for e in plan.table("public.patient").expectations if e.kind == "primary_key"
    } == {"expect_column_values_to_be_unique"}
    assert "pg_constraint" not in ward["foreign_key"].kwargs["unexpected_rows_query"]
    with pytest.raises(ValueError):
        build_plan(load_manifest(make_backup(source_db).path), mode="quick")
