"""Correctness oracle: our database findings vs Debian's check_postgres on the same database.

Builds the synthetic scale-1 HIS database in a throwaway cluster (port 55601 by default),
creates real trouble in it (an idle-in-transaction session, a lock wait, a long query, a
sequence at 90 %, a bigint sequence feeding an int column at 98 %, a 90 %-deleted table, an
inactive replication slot), then — while the trouble is live — runs ``inspect_database``
once and the matching check_postgres actions with the same thresholds, and prints a Markdown
table of both verdicts and values. Needs ``apt-get install -y check-postgres``.

    .venv/bin/python bench/check_postgres_oracle.py [--port 55601] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from hisops.devenv.pgcluster import PgCluster
from hisops.inspect.engine import inspect_database
from hisops.inventory.models import Database, System
from hisops.inventory.thresholds import LevelOverride, ThresholdOverrides, Thresholds

DB = "his_scale1"
SLOT = "oracle_inactive_slot"
CP_STATUS = {"OK": "ok", "WARNING": "warn", "CRITICAL": "critical", "UNKNOWN": "check_error"}

OUR_THRESHOLDS = {  # the same limits as the check_postgres arguments below
    "idle_in_tx_seconds": {"warn": 1, "critical": 3600},
    "long_query_seconds": {"warn": 1, "critical": 3600},
    "lock_wait_seconds": {"warn": 1, "critical": 3600},
    "bloat_bytes": {"warn": 1024**2, "critical": 1024**3},
}


@dataclass(frozen=True)
class Pair:
    label: str
    check_id: str
    ours: Any  # finding → value shown
    cp_args: list[str]
    cp_value: str  # regex on check_postgres' output, group 1 = value
    note: str = ""


PAIRS = [
    Pair(
        "reachable",
        "database.reachable",
        lambda f: "connected",
        ["--action=connection"],
        r"(version [\d.]+)",
    ),
    Pair(
        "connections",
        "db.connections",
        lambda f: (
            f"{f.details['client_backends']} client / "
            f"{f.details['backends_with_db']} with a db of {f.details['max_connections']}"
        ),
        ["--action=backends", "--warning=80%", "--critical=95%"],
        r"(\d+ of \d+ connections)",
        "CP counts pg_stat_activity rows with a database (autovacuum workers too); we count client "
        "backends",
    ),
    Pair(
        "idle in transaction",
        "db.idle_in_tx",
        lambda f: f"{f.details['count']} session(s), longest {f.value:.1f} s",
        ["--action=txn_idle", "--warning=1 second", "--critical=1 hour"],
        r"longest idle in txn: (\d+s)|(\d+ idle)",
    ),
    Pair(
        "long query",
        "db.long_queries",
        lambda f: f"longest {f.value:.1f} s",
        ["--action=query_time", "--warning=1 second", "--critical=1 hour"],
        r"longest query: (\d+s)",
    ),
    Pair(
        "lock wait",
        "db.locks",
        lambda f: f"{f.details['waiting']} waiting, {f.value:.1f} s",
        ["--action=locks", "--warning=waiting=1", "--critical=waiting=100"],
        r"(waiting=\d+)",
        "CP counts waiting locks; we measure how long the oldest waiter waits (and name its "
        "blocker)",
    ),
    Pair(
        "xid age (absolute)",
        "db.xid_age",
        lambda f: f"{f.details['age']:,}",
        ["--action=txn_wraparound"],
        rf"{DB}: (\d+)",
        "CP per database; we report the cluster's oldest",
    ),
    Pair(
        "xid age (% freeze_max_age)",
        "db.xid_age",
        lambda f: f"{f.value:.4f}%",
        ["--action=autovac_freeze"],
        rf"{DB}=(\d+%)",
    ),
    Pair(
        "sequences",
        "db.sequences",
        lambda f: f"{f.details['top'][0]['name']} {f.value:.2f}%",
        ["--action=sequence", "--warning=85%", "--critical=95%"],
        r"(public\.\S+=\d+%)",
        "CP (PG ≥ 10) uses the sequence's own max; we also cap by the owning column's type",
    ),
    Pair(
        "table bloat",
        "db.bloat",
        lambda f: (
            f"{f.details['tables'][0]['name']} {f.details['tables'][0]['bloat_bytes']:,.0f} B"
        ),
        ["--action=bloat", "--warning=1 MB", "--critical=1 GB"],
        r"table (public\.\S+ rows:\d+ pages:\d+ shouldbe:\d+ \S+ wasted size:\d+)",
        "CP also estimates index bloat (we don't)",
    ),
    Pair(
        "cache hit ratio",
        "db.cache_hit",
        lambda f: f"{f.value:.2f}%" if f.value is not None else f.value_text,
        ["--action=hitratio", "--warning=99%", "--critical=95%", f"--include={DB}"],
        rf"{DB}: ([\d.]+)",
        "both read pg_stat_database; CP checks every database unless --include (used here)",
    ),
    Pair(
        "database size",
        "db.size_growth",
        lambda f: f"{f.value:,.0f} B",
        ["--action=database_size", "--warning=1 TB", "--critical=2 TB"],
        rf"{DB}: (\d+)",
    ),
    Pair(
        "last vacuum",
        "db.vacuum_age",
        lambda f: f"{f.value:.4f} h; never: {f.details['never'][:3]}",
        ["--action=last_vacuum", "--warning=1d", "--critical=2d"],
        r"(TABLE: \S+ [^|]*?)(?: \||$)",
        "CP: the table with the oldest vacuum among all (incl. catalogs, never-vacuumed ignored); "
        "we: tables "
        "past autovacuum's trigger",
    ),
    Pair(
        "replication slot",
        "db.replication",
        lambda f: f.message_en[:70],
        ["--action=replication_slots", "--warning=0", "--critical=1 GB"],
        rf"({SLOT}: [\d.]+ \w+)",
        "CP: WAL retained in bytes; we: inactive slot = warn (PG < 17 has no inactive_since), "
        "retained ≥ 1 GB = critical",
    ),
]


def connect(cluster: PgCluster, autocommit: bool = True) -> Any:
    conn = psycopg2.connect(cluster.dsn(DB))
    conn.autocommit = autocommit
    return conn


def prepare(cluster: PgCluster) -> None:
    cluster.start()
    if not cluster.database_exists(DB):
        from hisops.synth.generate import generate

        cluster.create_database(DB)
        generate(cluster.dsn(DB), scale=1.0, seed=42)
    for sql in (
        "DROP TABLE IF EXISTS oracle_seq, oracle_seq2, oracle_bloat, oracle_lock",
        "CREATE TABLE oracle_seq (id serial PRIMARY KEY)",
        "SELECT setval('oracle_seq_id_seq', 1932735283)",  # 90 % of int4
        "CREATE TABLE oracle_seq2 (id int); CREATE SEQUENCE oracle_seq2_seq AS bigint OWNED BY "
        "oracle_seq2.id",
        "SELECT setval('oracle_seq2_seq', 2104533975)",  # 98 % of int4, 0 % of bigint
        "CREATE TABLE oracle_bloat (id int, pad text) WITH (autovacuum_enabled = false)",
        "INSERT INTO oracle_bloat SELECT g, repeat('x', 80) FROM generate_series(1, 200000) g",
        "DELETE FROM oracle_bloat WHERE id % 10 <> 0",
        "VACUUM ANALYZE oracle_bloat",
        "CREATE TABLE oracle_lock (id int)",
    ):
        cluster.execute(sql, DB)
    with contextlib.suppress(psycopg2.Error):
        cluster.execute(f"SELECT pg_drop_replication_slot('{SLOT}')")
    cluster.execute(f"SELECT pg_create_physical_replication_slot('{SLOT}', true)")


class Trouble:
    """Live trouble: idle-in-transaction session, lock holder + waiter, long query."""

    def __init__(self, cluster: PgCluster) -> None:
        self.idle, self.holder, self.waiter, self.sleeper = (
            connect(cluster, False),
            connect(cluster, False),
            connect(cluster),
            connect(cluster),
        )
        self.idle.cursor().execute("SELECT 1")
        self.holder.cursor().execute("LOCK TABLE oracle_lock IN ACCESS EXCLUSIVE MODE")
        self.threads = [
            threading.Thread(target=self._quiet, args=(c, sql))
            for c, sql in (
                (self.waiter, "SELECT count(*) FROM oracle_lock"),
                (self.sleeper, "SELECT pg_sleep(600)"),
            )
        ]
        for t in self.threads:
            t.start()

    @staticmethod
    def _quiet(conn: Any, sql: str) -> None:
        with contextlib.suppress(psycopg2.Error):
            conn.cursor().execute(sql)

    def end(self) -> None:
        self.sleeper.cancel()
        self.holder.rollback()
        self.idle.rollback()
        for t in self.threads:
            t.join(10)
        for c in (self.idle, self.holder, self.waiter, self.sleeper):
            c.close()


def run_cp(cluster: PgCluster, args: list[str]) -> tuple[str, str]:
    env = {**os.environ, "PGPASSWORD": cluster.password}
    cmd = [
        "check_postgres",
        f"--host={cluster.host}",
        f"--port={cluster.port}",
        f"--dbuser={cluster.user}",
        f"--dbname={DB}",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env).stdout.strip()
    m = re.match(r"POSTGRES_\w+ (OK|WARNING|CRITICAL|UNKNOWN)", out)
    return (CP_STATUS[m.group(1)] if m else "error"), out


def ours(cluster: PgCluster) -> dict[str, Any]:
    db = Database(id=DB, conn_id=DB)
    th = Thresholds().merged(
        ThresholdOverrides(**{k: LevelOverride(**v) for k, v in OUR_THRESHOLDS.items()})
    )
    findings = inspect_database(
        System(id="o", name="o", name_en="o", databases=[db]), db, cluster.dsn(DB), th
    )
    return {f.check_id: f for f in findings}


def compare(cluster: PgCluster) -> list[tuple[str, ...]]:
    found = ours(cluster)
    rows = []
    for pair in PAIRS:
        f = found[pair.check_id]
        status, out = run_cp(cluster, pair.cp_args)
        m = re.search(pair.cp_value, out)
        cp_value = next((g for g in m.groups() if g), "") if m else out[:120]
        agree = "yes" if status == f.severity else "no"
        rows.append(
            (pair.label, f"{f.severity}: {pair.ours(f)}", f"{status}: {cp_value}", agree, pair.note)
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, default=55601)
    ap.add_argument("--root", type=Path, default=Path("/tmp/hisops-bench-inspect/pg"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not shutil.which("check_postgres"):
        raise SystemExit("check_postgres not found: apt-get install -y check-postgres")
    cluster = PgCluster(args.root, args.port)
    try:
        prepare(cluster)
        trouble = Trouble(cluster)
        try:
            time.sleep(2.5)  # let the idle session, the lock wait and the query age past 1 s
            rows = compare(cluster)
        finally:
            trouble.end()
            cluster.execute(f"SELECT pg_drop_replication_slot('{SLOT}')")
        print("| check | hisops | check_postgres | same severity | note |")
        print("|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    finally:
        if not args.keep:
            cluster.destroy()


if __name__ == "__main__":
    main()
