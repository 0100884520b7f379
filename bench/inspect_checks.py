"""Benchmark: the whole database check set on the synthetic scale-1 HIS database.

Measures, per inspection of one database (`hisops.inspect.engine.inspect_database`):
- server time from pg_stat_statements (execution + planning, track_planning on) of the
  statements tagged ``/* hisops:inspect:<name> */`` — delta of the counters, never a reset;
- client wall time (connect + one round trip per statement + evaluation);
- a first run right after a server restart (cold catalog caches in a fresh backend, shared
  buffers empty) and steady-state runs.

``--baseline REV`` also runs the statements of ``db_checks`` as of git revision REV, in
alternating phases with the current ones on the same database, so the ratio holds even on a
loaded machine.

It starts its own throwaway cluster (default port 55601, under /tmp) and destroys it at the
end unless --keep. Usage:

    .venv/bin/python bench/inspect_checks.py [--runs 30] [--port 55601] [--scale 1] [--keep]
    [--baseline REV]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import types
from pathlib import Path
from typing import Any

import psycopg2
from hisops.devenv.pgcluster import PgCluster
from hisops.inspect import db_checks
from hisops.inspect.engine import inspect_database
from hisops.inventory.models import Database, System
from hisops.inventory.thresholds import Thresholds

DB = "his_scale1"
STATS = """SELECT substring(query FROM 'hisops:inspect:([a-z_]+)') AS name, sum(calls)::bigint,
                  sum(total_exec_time), sum(total_plan_time)
           FROM pg_stat_statements WHERE dbid = %s AND query LIKE '%%hisops:inspect:%%' GROUP BY
               1"""


def query(cluster: PgCluster, sql: str, args: tuple = (), dbname: str = "postgres") -> list[tuple]:
    conn = psycopg2.connect(cluster.dsn(dbname))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def prepare(cluster: PgCluster, scale: float) -> None:
    cluster.start()
    cluster.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    cluster.execute("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
    cluster.execute("SELECT pg_reload_conf()")
    if not cluster.database_exists(DB):
        from hisops.synth.generate import generate

        cluster.create_database(DB)
        generate(cluster.dsn(DB), scale=scale, seed=42)


def snapshot(cluster: PgCluster, dbid: int) -> dict[str, tuple[int, float, float]]:
    return {
        name: (calls, exec_ms, plan_ms)
        for name, calls, exec_ms, plan_ms in query(cluster, STATS, (dbid,))
    }


def delta(before: dict, after: dict) -> dict[str, tuple[int, float, float]]:
    zero = (0, 0.0, 0.0)
    return {
        k: tuple(a - b for a, b in zip(after[k], before.get(k, zero), strict=True)) for k in after
    }


def one_run(cluster: PgCluster) -> tuple[float, list[Any]]:
    db = Database(id=DB, conn_id=DB)
    system = System(id="bench", name="基准", name_en="bench", databases=[db])
    start = time.perf_counter()
    findings = inspect_database(
        system, db, cluster.dsn(DB), Thresholds(), catalog_facts={"last_verified_backup_at": None}
    )
    return time.perf_counter() - start, findings


def baseline_module(rev: str) -> types.ModuleType:
    """``hisops.inspect.db_checks`` as it was at git revision ``rev`` (only its statements used)."""
    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:include/hisops/inspect/db_checks.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"db_checks_{rev}")
    exec(compile(source, f"db_checks@{rev}", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def baseline_run(cluster: PgCluster, module: types.ModuleType) -> tuple[float, list[Any]]:
    from hisops.inspect.engine import db_checks_session

    start = time.perf_counter()
    with db_checks_session(cluster.dsn(DB), DB) as conn:
        module.fetch_all(conn)
    return time.perf_counter() - start, []


def measure_baseline(
    cluster: PgCluster, dbid: int, runs: int, module: types.ModuleType
) -> tuple[list[float], dict]:
    before = snapshot(cluster, dbid)
    walls = [baseline_run(cluster, module)[0] for _ in range(runs)]
    return walls, delta(before, snapshot(cluster, dbid))


def merge(a: dict, b: dict) -> dict:
    zero = (0, 0.0, 0.0)
    return {
        k: tuple(x + y for x, y in zip(a.get(k, zero), b.get(k, zero), strict=True)) for k in a | b
    }


def measure(cluster: PgCluster, dbid: int, runs: int) -> tuple[list[float], dict, list[Any]]:
    before = snapshot(cluster, dbid)
    walls, findings = [], []
    for _ in range(runs):
        wall, findings = one_run(cluster)
        walls.append(wall)
    return walls, delta(before, snapshot(cluster, dbid)), findings


def report(label: str, walls: list[float], stats: dict, runs: int) -> float:
    server = sum(e + p for _, e, p in stats.values()) / runs
    print(f"\n{label}: {runs} run(s)")
    print(f"  server time per database: {server:.1f} ms (exec+plan, pg_stat_statements)")
    print(
        f"  client wall per database: median {statistics.median(walls) * 1000:.1f} ms, "
        f"max {max(walls) * 1000:.1f} ms"
    )
    for name in db_checks.QUERIES:
        calls, exec_ms, plan_ms = stats.get(name, (0, 0.0, 0.0))
        if calls:
            print(
                f"    {name:<12} exec {exec_ms / calls:7.2f} ms  plan {plan_ms / calls:6.2f} ms  "
                f"({calls} calls)"
            )
    return server


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--port", type=int, default=55601)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--root", type=Path, default=Path("/tmp/hisops-bench-inspect/pg"))
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    ap.add_argument(
        "--baseline", metavar="REV", help="also measure db_checks' statements of this git revision"
    )
    args = ap.parse_args()
    cluster = PgCluster(args.root, args.port)
    try:
        prepare(cluster, args.scale)
        dbid = query(cluster, "SELECT oid FROM pg_database WHERE datname = %s", (DB,))[0][0]
        size = query(cluster, "SELECT pg_database_size(%s)", (DB,))[0][0]
        tables = query(
            cluster, "SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'i', 'S')", dbname=DB
        )[0][0]
        print(
            f"database {DB}: {size / 1e6:.0f} MB, {tables} tables/indexes/sequences; PostgreSQL "
            f"{query(cluster, 'SHOW server_version')[0][0]}"
        )
        cluster.stop()
        cluster.start()
        walls, stats, _ = measure(cluster, dbid, 1)
        report("first run after a server restart (cold)", walls, stats, 1)
        one_run(cluster)  # settle
        if args.baseline:
            old = baseline_module(args.baseline)
            baseline_run(cluster, old)  # settle
            walls, stats, base_walls, base_stats, half = [], {}, [], {}, max(1, args.runs // 2)
            for _ in range(2):  # B N B N: drift of the machine's load hits both alike
                w, st = measure_baseline(cluster, dbid, half, old)
                base_walls, base_stats = base_walls + w, merge(base_stats, st)
                w, st, findings = measure(cluster, dbid, half)
                walls, stats = walls + w, merge(stats, st)
            base = report(
                f"baseline {args.baseline} (statements only), steady state",
                base_walls,
                base_stats,
                len(base_walls),
            )
            new = report("current, steady state", walls, stats, len(walls))
            print(f"\n  ratio current / baseline server time: {new / base:.2f}")
        else:
            walls, stats, findings = measure(cluster, dbid, args.runs)
            report("steady state", walls, stats, args.runs)
        print("\nfindings of the last run:")
        for f in findings:
            print(f"  {f.severity:<11} {f.check_id:<18} {f.message_en[:100]}")
    finally:
        if not args.keep:
            cluster.destroy()


if __name__ == "__main__":
    main()
