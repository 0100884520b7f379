"""Database checks against the real private cluster: each condition is created for real."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from hisops.inspect import db_checks
from hisops.inspect.engine import inspect_database, metrics_from
from hisops.inventory.thresholds import Thresholds

from tests.inspect.conftest import by_id, database, system, thresholds


def run(pg, dbname: str, th: Thresholds | None = None, facts: dict | None = None, now=None) -> dict:
    db = database()
    return by_id(
        inspect_database(
            system(databases=[db]),
            db,
            pg.dsn(dbname),
            th or Thresholds(),
            catalog_facts=facts,
            now=now,
        )
    )


def one(pg, sql: str, dbname: str = "postgres", args: tuple = ()) -> tuple:
    conn = psycopg2.connect(pg.dsn(dbname))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()
    finally:
        conn.close()


def scalar(pg, sql: str, dbname: str = "postgres", args: tuple = ()):
    return one(pg, sql, dbname, args)[0]


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def test_healthy_database_all_checks_run(pg, new_db):
    db = new_db("healthy")
    found = run(pg, db, facts={"last_verified_backup_at": datetime.now(UTC) - timedelta(hours=2)})
    expected = {cid for cid, _, _ in db_checks.CHECKS} | {"database.reachable"}
    assert set(found) == expected
    assert not [f.check_id for f in found.values() if f.severity == "check_error"]
    assert found["database.reachable"].severity == "ok"
    assert found["db.version"].value == int(scalar(pg, "SHOW server_version_num"))
    uptime_min = float(
        scalar(pg, "SELECT extract(epoch FROM now() - pg_postmaster_start_time()) / 60")
    )
    assert found["db.uptime"].value == pytest.approx(uptime_min, abs=0.5)
    assert found["db.uptime"].severity == ("warn" if uptime_min <= 10 else "ok")
    assert found["db.backup_age"].severity == "ok" and found[
        "db.backup_age"
    ].value == pytest.approx(2, abs=0.05)
    size = scalar(pg, "SELECT pg_database_size(current_database())", db)
    assert found["db.size_growth"].value == pytest.approx(size, rel=0.05)
    for (
        f
    ) in found.values():  # bilingual, Chinese first, and a suggestion wherever something is wrong
        assert (
            f.message_zh
            and f.message_en
            and f.target_id == "his_db"
            and f.system_id == "outpatient"
        )
        assert f.severity == "ok" or f.suggestion_zh


def test_runs_seven_tagged_statements(pg, new_db):
    db = new_db("stmts")
    dbid = scalar(pg, "SELECT oid FROM pg_database WHERE datname = %s", args=(db,))
    calls = (
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = %s "
        "AND query LIKE '%%hisops:inspect:%%'"
    )
    before = scalar(pg, calls, args=(dbid,))
    run(pg, db)
    assert scalar(pg, calls, args=(dbid,)) - before == len(db_checks.QUERIES) == 7


def test_idle_in_transaction_session(pg, new_db, conns):
    db = new_db("idle")
    holder = conns(db, autocommit=False)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")  # opens a transaction and leaves it idle
        pid = cur.fetchone()[0]
    time.sleep(1.2)
    found = run(
        pg, db, thresholds(idle_in_tx_seconds={"warn": 1.0}, idle_in_tx_count={"critical": 5})
    )
    idle = scalar(
        pg,
        "SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity WHERE pid = %s",
        args=(pid,),
    )
    f = found["db.idle_in_tx"]
    assert f.severity == "warn"
    assert f.details["count"] == 1 and f.details["top"][0]["pid"] == pid
    assert f.value == pytest.approx(float(idle), abs=0.5)
    counted = run(pg, db, thresholds(idle_in_tx_count={"critical": 1}))["db.idle_in_tx"]
    assert counted.severity == "critical"


def test_blocking_lock(pg, new_db, conns):
    db = new_db("locks")
    pg.execute("CREATE TABLE t (id int)", db)
    holder, waiter = conns(db, autocommit=False), conns(db)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        holder_pid = cur.fetchone()[0]
        cur.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    with waiter.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        waiter_pid = cur.fetchone()[0]
    blocked = threading.Thread(target=lambda: waiter.cursor().execute("SELECT count(*) FROM t"))
    blocked.start()
    try:
        wait_for(
            lambda: (
                scalar(
                    pg,
                    "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted",
                    args=(waiter_pid,),
                )
                == 1
            )
        )
        time.sleep(0.6)
        f = run(pg, db, thresholds(lock_wait_seconds={"warn": 0.5, "critical": 600}))["db.locks"]
    finally:
        holder.rollback()
        blocked.join(10)
    assert f.severity == "warn" and f.details["waiting"] == 1
    top = f.details["top"][0]
    assert top["pid"] == waiter_pid and top["relation"] == "t" and top["mode"] == "AccessShareLock"
    assert [b["pid"] for b in top["blockers"]] == [holder_pid]
    assert 0.5 <= f.value < 30


def test_long_running_query(pg, new_db, conns):
    db = new_db("longq")
    sleeper = conns(db)
    with sleeper.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]

    def sleep() -> None:
        with contextlib.suppress(psycopg2.errors.QueryCanceled):
            sleeper.cursor().execute("SELECT pg_sleep(30)")

    thread = threading.Thread(target=sleep)
    thread.start()
    try:
        wait_for(
            lambda: (
                scalar(pg, "SELECT state FROM pg_stat_activity WHERE pid = %s", args=(pid,))
                == "active"
            )
        )
        time.sleep(0.5)
        f = run(pg, db, thresholds(long_query_seconds={"warn": 0.4, "critical": 600}))[
            "db.long_queries"
        ]
    finally:
        sleeper.cancel()
        thread.join(10)
    assert f.severity == "warn"
    assert f.details["top"][0]["pid"] == pid and "pg_sleep" in f.details["top"][0]["query"]
    assert 0.4 <= f.value < 30


def test_sequence_near_exhaustion_uses_the_column_type(pg, new_db):
    db = new_db("seq")
    pg.execute("CREATE TABLE s1 (id serial PRIMARY KEY)", db)
    pg.execute("SELECT setval('s1_id_seq', 1932735283)", db)  # 90% of int4
    found = run(pg, db)["db.sequences"]
    expected = 100.0 * (1932735283 - 1) / (2147483647 - 1)
    assert found.severity == "warn" and found.value == pytest.approx(expected, abs=0.01)
    # a bigint sequence feeding an int column: exhausted by the column, not by the sequence
    pg.execute("CREATE TABLE s2 (id int); CREATE SEQUENCE s2_seq AS bigint OWNED BY s2.id", db)
    pg.execute("SELECT setval('s2_seq', 2100000000)", db)
    worst = run(pg, db)["db.sequences"]
    assert worst.severity == "critical"
    assert (
        worst.details["top"][0]["name"] == "public.s2_seq"
        and worst.details["top"][0]["coltype"] == "int4"
    )
    assert worst.value == pytest.approx(100.0 * (2100000000 - 1) / (2147483647 - 1), abs=0.01)


def test_invalid_index_left_by_failed_concurrent_build(pg, new_db):
    db = new_db("invidx")
    pg.execute("CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1)", db)
    with pytest.raises(psycopg2.errors.UniqueViolation):
        pg.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_v_uq ON dup (v)", db)
    f = run(pg, db)["db.invalid_indexes"]
    assert f.severity == "warn" and f.value == 1
    assert [i["name"] for i in f.details["indexes"]] == ["public.dup_v_uq"]
    assert "dup_v_uq" in f.suggestion_zh


def test_dead_tuples_and_vacuum_age(pg, new_db):
    db = new_db("dead")
    pg.execute("CREATE TABLE d (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)", db)
    pg.execute("INSERT INTO d SELECT g, 0 FROM generate_series(1, 30000) g", db)
    pg.execute("UPDATE d SET v = 1", db)
    wait_for(
        lambda: (
            scalar(pg, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'd'", db)
            >= 30000
        )
    )
    dead = scalar(pg, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'd'", db)
    found = run(pg, db)
    f = found["db.dead_tuples"]
    assert f.severity == "warn" and f.value == dead
    assert f.details["tables"][0]["name"] == "public.d" and "public.d" in f.suggestion_zh
    never = found["db.vacuum_age"]  # past autovacuum's trigger and never vacuumed
    assert never.severity == "warn" and "public.d" in never.details["never"]
    # vacuumed once, then dirtied again: the age since that vacuum counts
    pg.execute("VACUUM d", db)
    pg.execute("UPDATE d SET v = 2", db)
    wait_for(
        lambda: (
            scalar(pg, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'd'", db)
            >= 30000
        )
    )
    aged = run(pg, db, thresholds(vacuum_age_hours={"warn": 0.00001, "critical": 10}))[
        "db.vacuum_age"
    ]
    assert aged.severity == "warn" and aged.details["never"] == []
    assert 0 < aged.value < 0.1
    relaxed = run(pg, db, thresholds(dead_tuples_min={"warn": 10_000_000}))["db.dead_tuples"]
    assert relaxed.severity == "ok"  # both conditions must hold


def test_table_bloat_estimate(pg, new_db):
    db = new_db("bloat")
    pg.execute("CREATE TABLE b (id int, pad text) WITH (autovacuum_enabled = false)", db)
    pg.execute("INSERT INTO b SELECT g, repeat('x', 80) FROM generate_series(1, 60000) g", db)
    pg.execute("DELETE FROM b WHERE id % 10 <> 0", db)  # 90% gone, pages stay
    pg.execute("VACUUM ANALYZE b", db)
    size = scalar(pg, "SELECT pg_relation_size('b')", db)
    f = run(pg, db, thresholds(bloat_bytes={"warn": 1024 * 1024, "critical": 1024**4}))["db.bloat"]
    top = f.details["tables"][0]
    assert top["name"] == "public.b" and top["real_bytes"] == size
    assert f.severity == "warn" and 0.75 * size < f.value < 0.95 * size


def test_inactive_replication_slot(pg, new_db):
    db = new_db("repl")
    name = f"hisops_{db}"
    pg.execute(f"SELECT pg_create_physical_replication_slot('{name}', true)")
    try:
        f = run(pg, db)["db.replication"]
    finally:
        pg.execute(f"SELECT pg_drop_replication_slot('{name}')")
    assert f.severity == "warn"
    slot = next(s for s in f.details["slots"] if s["name"] == name)
    assert slot["active"] is False and slot["retained_bytes"] >= 0
    assert name in f.message_zh


def test_cluster_wide_levels_with_low_thresholds(pg, new_db):
    db = new_db("levels")
    th = thresholds(
        connections_pct={"warn": 0.01}, xid_age={"warn": 1}, uptime_minutes={"warn": 1e9}
    )
    found = run(pg, db, th)
    conn = found["db.connections"]
    assert conn.severity == "warn"
    assert conn.details["max_connections"] == int(scalar(pg, "SHOW max_connections"))
    assert conn.value == pytest.approx(
        100 * conn.details["client_backends"] / conn.details["max_connections"], abs=0.1
    )
    xid = found["db.xid_age"]
    age = scalar(pg, "SELECT max(age(datfrozenxid)) FROM pg_database")
    assert xid.severity == "warn" and abs(xid.details["age"] - age) <= 20
    assert xid.value == pytest.approx(100 * xid.details["age"] / 200_000_000, abs=0.01)
    assert found["db.uptime"].severity == "warn"


def test_cache_hit_ratio(pg, new_db):
    db = new_db("cache")
    pg.execute("CREATE TABLE c AS SELECT g FROM generate_series(1, 700000) g", db)
    conn = psycopg2.connect(pg.dsn(db))
    try:
        with conn.cursor() as cur:
            for _ in range(4):
                cur.execute("SELECT count(*) FROM c")
    finally:
        conn.close()
    wait_for(
        lambda: (
            scalar(
                pg,
                "SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = %s",
                args=(db,),
            )
            >= db_checks.MIN_CACHE_READS
        )
    )
    f = run(pg, db, thresholds(cache_hit_pct={"warn": 100, "critical": None}))["db.cache_hit"]
    hit, read = one(
        pg, "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = %s", args=(db,)
    )
    seen_hit, seen_read = f.details["hit"], f.details["read"]
    assert f.severity == "warn" and seen_hit <= hit and seen_read <= read  # counters only grow
    assert f.value == pytest.approx(100 * seen_hit / (seen_hit + seen_read), abs=0.01)


def test_cache_hit_ratio_needs_enough_reads(pg, new_db):
    db = new_db("cold")
    f = run(pg, db, thresholds(cache_hit_pct={"warn": 100, "critical": None}))["db.cache_hit"]
    hit, read = one(
        pg, "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = %s", args=(db,)
    )
    if hit + read < db_checks.MIN_CACHE_READS:  # the stats this check saw were at most these
        assert (
            f.severity == "ok"
            and f.value is None
            and f.details["hit"] + f.details["read"] <= hit + read
        )


def test_size_growth_days_until_full(pg, new_db):
    db = new_db("growth")
    size = scalar(pg, "SELECT pg_database_size(current_database())", db)
    now = datetime.now(UTC)
    facts = {
        "previous_size_bytes": size - 10 * 1024**2,
        "previous_size_at": now - timedelta(hours=24),
        "disk_free_bytes": 5 * 1024**2,
    }
    f = run(pg, db, facts=facts, now=now)["db.size_growth"]
    per_day = (f.value - facts["previous_size_bytes"]) / 24 * 24
    assert f.details["growth_bytes_per_day"] == pytest.approx(per_day)
    assert f.details["days_until_full"] == pytest.approx(5 * 1024**2 / per_day)
    assert f.severity == "warn"  # full within a day
    assert ("his_db", "database_size_bytes", f.value) in metrics_from([f])


def test_backup_age_from_catalog_facts(pg, new_db):
    db = new_db("backup")
    now = datetime.now(UTC)
    assert (
        run(pg, db, facts={"last_verified_backup_at": now - timedelta(hours=30)}, now=now)[
            "db.backup_age"
        ].severity
        == "warn"
    )
    late = run(pg, db, facts={"last_verified_backup_at": now - timedelta(hours=60)}, now=now)[
        "db.backup_age"
    ]
    assert late.severity == "critical" and late.value == pytest.approx(60)
    assert (
        run(pg, db, facts={"last_verified_backup_at": None})["db.backup_age"].severity == "critical"
    )
    assert "db.backup_age" not in run(pg, db, facts=None)


def test_failing_statement_is_a_check_error_for_its_checks_only(pg, new_db, monkeypatch):
    db = new_db("broken")
    monkeypatch.setitem(
        db_checks.QUERIES, "bloat", lambda v: "/* hisops:inspect:bloat */ SELECT 1 / 0"
    )
    found = run(pg, db)
    assert (
        found["db.bloat"].severity == "check_error"
        and "division by zero" in found["db.bloat"].message_en
    )
    assert [f.check_id for f in found.values() if f.severity == "check_error"] == ["db.bloat"]


def test_database_down_is_one_critical_finding(pg):
    from tests.conftest import free_port

    db = database()
    dsn = f"host=127.0.0.1 port={free_port()} dbname=x user=x password=x"
    findings = inspect_database(system(databases=[db]), db, dsn, Thresholds())
    assert [(f.check_id, f.severity) for f in findings] == [("database.reachable", "critical")]
    assert "127.0.0.1" in findings[0].message_en or "refused" in findings[0].message_en.lower()


def test_wrong_password_is_one_critical_finding(pg):
    db = database()
    dsn = pg.dsn().replace(f"password={pg.password}", "password=wrong")
    findings = inspect_database(system(databases=[db]), db, dsn, Thresholds())
    assert [(f.check_id, f.severity) for f in findings] == [("database.reachable", "critical")]
    assert "password authentication failed" in findings[0].message_en
    assert pg.password not in findings[0].message_en


def test_synthetic_his_database_is_clean(pg, new_db):
    generate = pytest.importorskip("hisops.synth.generate").generate
    db = new_db("synth")
    generate(pg.dsn(db), scale=0.02, seed=7, log=lambda _msg: None)
    found = run(pg, db)
    assert not [f.check_id for f in found.values() if f.severity == "check_error"]
    for check in ("db.dead_tuples", "db.invalid_indexes", "db.sequences", "db.bloat", "db.locks"):
        assert found[check].severity == "ok", found[check].message_en
    assert found["db.sequences"].details["sequences"] >= 10
