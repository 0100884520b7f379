"""performance_review on a real planted database: statements, hypopg advice, health, proposals."""

from __future__ import annotations

import psycopg2
from hisops.tune import review

from tests.tune.conftest import DB_ID, run_workload


def test_review_proves_the_missing_index_and_finds_unused_duplicate_and_bloat(
    catalog, inventory, planted, run
):
    result = review.review_database(catalog, inventory, DB_ID, planted, run)
    assert result.ok, result.error
    suggestions = result.advice["suggestions"]
    assert [(s["table"], s["columns"]) for s in suggestions] == [("public.visit", ["patient_id"])]
    s = suggestions[0]
    assert s["drop_pct"] >= 50 and s["cost_after"] < s["cost_before"]
    assert "patient_id = $1" in s["query"] and "Seq Scan" in s["plan_before"]
    assert "hypopg" in s["plan_after"].lower() or "Index" in s["plan_after"]
    assert s["saved_ms_per_day"] > 0
    # never an index an existing btree covers: dept_id has one (twice)
    assert all(s["columns"][0] != "dept_id" for s in suggestions)
    health = result.health
    assert [r["index"] for r in health["redundant"]] == [
        "public.visit_dept_idx"
    ]  # equal twin, reported once
    assert "public.visit_note_idx" in [u["index"] for u in health["unused"]]
    assert "public.visit_pkey" not in [
        u["index"] for u in health["unused"]
    ]  # backs the primary key
    assert any(
        t["table"] == "public.visit" and t["dead"] > 0
        for t in health["autovacuum_lag"] + health["bloated_tables"]
    )
    kinds = sorted((p["kind"], p["object"]) for p in result.proposals)
    assert ("create_index", "hisops_visit_patient_id_idx") in kinds
    assert ("drop_index", "public.visit_note_idx") in kinds
    stored = catalog.proposals("his_outpatient")
    assert {p.state for p in stored} == {"proposed"}
    assert catalog.latest_statement_snapshot(DB_ID) is not None
    [event] = [e for e in catalog.audit_events() if e.action == "performance_review"]
    assert (event.actor, event.result) == ("operator1", "success")


def test_second_review_uses_deltas_and_keeps_one_open_proposal(catalog, inventory, planted, run):
    first = review.review_database(catalog, inventory, DB_ID, planted, run)
    run_workload(planted, calls=30)
    second = review.review_database(catalog, inventory, DB_ID, planted, run)
    slow = [s for s in second.top_total if "patient_id = $1" in s["query"]][0]
    assert (
        slow["d_calls"] == 30 and slow["calls"] >= 90
    )  # delta since the first review, counters kept
    assert {p["id"] for p in first.proposals} == {p["id"] for p in second.proposals}
    assert not any(p["new"] for p in second.proposals)
    assert second.trends and second.trends[0]["previous"] is not None


def test_without_hypopg_the_review_runs_and_says_why(catalog, inventory, planted, run):
    conn = psycopg2.connect(planted)
    conn.autocommit = True
    conn.cursor().execute("DROP EXTENSION hypopg")
    conn.close()
    result = review.review_database(catalog, inventory, DB_ID, planted, run)
    assert result.ok and result.advice["available"] is False
    assert "CREATE EXTENSION hypopg" in result.advice["reason_en"]
    assert "tune.hypopg" in [f["check"] for f in result.findings]
    assert result.health["unused"]  # the rest of the review still ran


def test_without_pg_stat_statements_a_finding_names_the_setting(catalog, inventory, planted, run):
    conn = psycopg2.connect(planted)
    conn.autocommit = True
    conn.cursor().execute("DROP EXTENSION pg_stat_statements")
    conn.close()
    result = review.review_database(catalog, inventory, DB_ID, planted, run)
    [finding] = [f for f in result.findings if f["check"] == "tune.pg_stat_statements"]
    assert "CREATE EXTENSION pg_stat_statements" in finding["message_en"]
    assert result.ok and result.top_total == [] and result.health["redundant"]


def test_unreachable_database_is_a_finding(catalog, inventory, run):
    result = review.review_database(
        catalog, inventory, DB_ID, "host=127.0.0.1 port=1 dbname=x", run
    )
    assert not result.ok and result.findings[0]["check"] == "tune.unreachable"


def test_database_not_in_inventory_is_refused(catalog, inventory, planted, run):
    import pytest

    with pytest.raises(KeyError, match="no database 'nope'"):
        review.review_database(catalog, inventory, "nope", planted, run)
