"""Backup throughput benchmark (issue 3): hisops db backup vs `pg_dump -Fc` vs raw `pg_dump -Fd -j2`.

    .venv/bin/python bench/backup_throughput.py --scale 22 --rounds 3

Builds a throwaway PostgreSQL cluster (port 55621, under bench/out/backup/), generates a synthetic
hospital database (scale 22 ≈ 2.1 GB), then in each round measures, side by side on the same warm cache
(the order rotates every round; the machine's 1-minute load is recorded before each run):

- ``pg_dump -Fc``               (what a hospital's cron script does: custom format, default compression)
- ``pg_dump -Fd -j2``           (raw directory format, 2 jobs, default compression)
- hisops ``run_database_backup`` (the db_backup task body: exported snapshot, row counts, schema
  fingerprint, pg_dump -Fd -j2, SHA-256 of every file, manifest, atomic rename, catalog row) — run in a
  child process whose process tree (python + pg_dump workers) is sampled for peak RSS.

Throughput = pg_database_size / wall seconds. Results: bench/out/backup/results.json and a Markdown
table on stdout. The cluster is destroyed at the end unless --keep (reuse it with the same --scale).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "backup"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DBNAME = "his_bench"


def cluster(port: int):
    from hisops.devenv.pgcluster import PgCluster

    return PgCluster(OUT / "pg", port)


def ensure_data(pg, scale: float) -> int:
    """Create and fill the benchmark database unless it is there already; returns its size."""
    from hisops.synth.generate import generate

    marker = OUT / "scale.txt"
    if pg.database_exists(DBNAME) and (not marker.exists() or float(marker.read_text()) != scale):
        pg.execute(f"DROP DATABASE {DBNAME} WITH (FORCE)")
    if not pg.database_exists(DBNAME):
        pg.create_database(DBNAME)
        marker.write_text(str(scale))
        generate(pg.dsn(DBNAME), scale, seed=20, log=lambda m: print(m, flush=True))
        pg.execute("VACUUM ANALYZE", DBNAME)
    return db_size(pg)


def db_size(pg) -> int:
    import psycopg2

    conn = psycopg2.connect(pg.dsn(DBNAME))
    with conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        size = cur.fetchone()[0]
    conn.close()
    return size


def ensure_catalog(pg) -> str:
    from hisops.catalog.migrate import upgrade

    pg.create_database("bench_catalog")
    upgrade(pg.sqlalchemy_url("bench_catalog"))
    return "bench_catalog"


def pg_env(pg) -> dict[str, str]:
    return {
        **os.environ,
        "PGPASSWORD": pg.password,
        "PGHOST": pg.host,
        "PGPORT": str(pg.port),
        "PGUSER": pg.user,
    }


def dir_size(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def run_tree(
    argv: list[str], env: dict[str, str], stdout: int | None = subprocess.DEVNULL
) -> tuple[float, int, str]:
    """Run a command; (wall seconds, peak RSS of its process tree in bytes sampled every 50 ms, stdout)."""
    import psutil

    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(_rss(p) for p in procs))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    seconds = time.monotonic() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, peak, out


def _rss(p) -> int:
    import psutil

    try:
        return p.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def hisops_child_env(pg, catalog_db: str, store: Path, compress: int) -> dict[str, str]:
    inv = OUT / f"inventory-z{compress}.yaml"
    inv.write_text(
        textwrap.dedent(f"""\
        version: 1
        hospital: 基准测试医院 (benchmark)
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {store}}}
        reports: {{path: {OUT}/reports}}
        systems:
          - id: bench
            name: 基准 Benchmark
            name_en: Benchmark
            databases:
              - id: his_bench
                conn_id: bench_db
                backup: {{jobs: 2, compress: {compress}}}
        """)
    )

    def conn(db: str) -> str:
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": pg.host,
                "port": pg.port,
                "login": pg.user,
                "password": pg.password,
                "schema": db,
            }
        )

    return {
        **os.environ,
        "HISOPS_INVENTORY": str(inv),
        "AIRFLOW_CONN_BENCH_DB": conn(DBNAME),
        "AIRFLOW_CONN_HISOPS_CATALOG": conn(catalog_db),
    }


# The child imports what an Airflow worker has already imported when the task body starts (Airflow,
# psycopg2, SQLAlchemy, the hisops modules), then times the task body itself; the parent measures
# the whole process wall time and the peak RSS of the whole tree (imports included: conservative).
HISOPS_CHILD = """
import json, logging, sys, time
logging.basicConfig(level=logging.WARNING)
import psycopg2, sqlalchemy, airflow.sdk
from airflow.sdk import BaseHook
import hisops.backup.dump, hisops.catalog.repository
from hisops.airflow.backup_tasks import run_database_backup
start = time.monotonic()
result = run_database_backup("his_bench", dag_id="bench", who="bench")
result["task_seconds"] = time.monotonic() - start
print(json.dumps(result))
"""


def measure_round(
    pg, catalog_db: str, size: int, work: Path, compress_levels: list[int], shift: int
) -> list[dict]:
    """One measurement of every contender; the order rotates by ``shift`` so none always runs first."""
    env = pg_env(pg)
    work.mkdir(parents=True, exist_ok=True)

    def pg_dump(name: str, args: list[str], out: Path) -> dict:
        secs, rss, _ = run_tree([str(PG_BIN / "pg_dump"), *args, "-f", str(out), DBNAME], env)
        return row(name, secs, rss, size, dir_size(out))

    def hisops(z: int) -> dict:
        store = work / f"hisops-z{z}"
        wall, rss, out = run_tree(
            [sys.executable, "-c", HISOPS_CHILD],
            hisops_child_env(pg, catalog_db, store, z),
            stdout=subprocess.PIPE,
        )
        task = json.loads(out.strip().splitlines()[-1])
        r = row(
            f"hisops db backup (jobs 2, compress {z})",
            task["task_seconds"],
            rss,
            size,
            dir_size(store),
        )
        return {**r, "process_wall_seconds": round(wall, 2), "backup_id": task["backup_id"]}

    contenders = [
        lambda: pg_dump(FC, ["-Fc"], work / "cron.dump"),
        lambda: pg_dump(FD, ["-Fd", "-j2"], work / "raw-fd"),
        lambda: pg_dump(FD_Z1, ["-Fd", "-j2", "-Z1"], work / "raw-fd-z1"),
        *[(lambda z=z: hisops(z)) for z in compress_levels],
    ]
    k = shift % len(contenders)
    results = []
    for run in contenders[k:] + contenders[:k]:
        load = os.getloadavg()[0]
        results.append({**run(), "load_1min_before": round(load, 2)})
    shutil.rmtree(work, ignore_errors=True)
    return sorted(results, key=lambda r: ORDER.get(r["name"], 9))


FC = "pg_dump -Fc (default compression)"
FD = "pg_dump -Fd -j2 (default compression)"
FD_Z1 = "pg_dump -Fd -j2 -Z1 (reference: hisops' dump step at compress 1)"
ORDER = {FC: 0, FD: 1, FD_Z1: 2}


def row(name: str, secs: float, rss: int, size: int, out_bytes: int) -> dict:
    return {
        "name": name,
        "seconds": round(secs, 2),
        "mb_per_s": round(size / 1e6 / secs, 1),
        "peak_rss_mb": round(rss / 2**20, 1),
        "output_mb": round(out_bytes / 1e6, 1),
    }


def ratios(rounds: list[list[dict]]) -> list[dict]:
    out = []
    for i, res in enumerate(rounds, 1):
        by = {r["name"]: r for r in res}
        fc, fd = by[FC]["seconds"], by[FD]["seconds"]
        for r in res:
            if r["name"].startswith("hisops"):
                out.append(
                    {
                        "round": i,
                        "name": r["name"],
                        "vs_pg_dump_Fc": round(fc / r["seconds"], 2),
                        "vs_pg_dump_Fd_j2": round(fd / r["seconds"], 2),
                        "peak_rss_mb": r["peak_rss_mb"],
                    }
                )
    return out


def medians(rounds: list[list[dict]]) -> list[dict]:
    from statistics import median

    names = sorted({r["name"] for r in ratios(rounds)})
    return [
        {
            "name": n,
            "vs_pg_dump_Fc": round(
                median(r["vs_pg_dump_Fc"] for r in ratios(rounds) if r["name"] == n), 2
            ),
            "vs_pg_dump_Fd_j2": round(
                median(r["vs_pg_dump_Fd_j2"] for r in ratios(rounds) if r["name"] == n), 2
            ),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ratios(rounds) if r["name"] == n),
        }
        for n in names
    ]


def best_of(rounds: list[list[dict]]) -> list[dict]:
    """Ratios of each contender's fastest round: the least disturbed by other load on a shared machine."""
    fastest: dict[str, float] = {}
    for res in rounds:
        for r in res:
            fastest[r["name"]] = min(fastest.get(r["name"], float("inf")), r["seconds"])
    return [
        {
            "name": n,
            "seconds": s,
            "vs_pg_dump_Fc": round(fastest[FC] / s, 2),
            "vs_pg_dump_Fd_j2": round(fastest[FD] / s, 2),
        }
        for n, s in fastest.items()
        if n.startswith("hisops")
    ]


def markdown(size: int, rounds: list[list[dict]]) -> str:
    lines = [
        f"database: {size / 1e9:.2f} GB (pg_database_size)",
        "",
        "| round | run | seconds | MB/s | peak RSS (MB) | output (MB) | load before |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, res in enumerate(rounds, 1):
        lines += [
            f"| {i} | {r['name']} | {r['seconds']} | {r['mb_per_s']} | {r['peak_rss_mb']} | {r['output_mb']} "
            f"| {r['load_1min_before']} |"
            for r in res
        ]
    lines += [
        "",
        "| round | hisops run | × pg_dump -Fc | × pg_dump -Fd -j2 | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['round']} | {r['name']} | {r['vs_pg_dump_Fc']} | {r['vs_pg_dump_Fd_j2']} | {r['peak_rss_mb']} |"
        for r in ratios(rounds)
    ]
    lines += [
        f"| median | {r['name']} | {r['vs_pg_dump_Fc']} | {r['vs_pg_dump_Fd_j2']} | {r['peak_rss_mb']} (max) |"
        for r in medians(rounds)
    ]
    lines += [
        f"| best of {len(rounds)} | {r['name']} ({r['seconds']} s) | {r['vs_pg_dump_Fc']} | {r['vs_pg_dump_Fd_j2']} | |"
        for r in best_of(rounds)
    ]
    return "\n".join(lines)


def warm_up(pg) -> None:
    """Read every table once so no contender pays for a cold cache."""
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "-Fc", "-Z0", "--no-sync", "-f", "/dev/null", DBNAME],
        env=pg_env(pg),
        check=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=22, help="synthetic scale (22 ≈ 2.1 GB)")
    ap.add_argument("--port", type=int, default=55621)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--compress",
        type=int,
        nargs="+",
        default=[1, 5],
        help="hisops policy compress levels to measure (default: 1 and the inventory default 5)",
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the cluster (and its data) for another run"
    )
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.chmod(OUT, 0o755)
    pg = cluster(args.port)
    pg.start()
    try:
        t0 = time.monotonic()
        size = ensure_data(pg, args.scale)
        print(f"database ready: {size / 1e9:.2f} GB ({time.monotonic() - t0:.0f}s)", flush=True)
        catalog_db = ensure_catalog(pg)
        warm_up(pg)
        rounds = []
        for i in range(args.rounds):
            rounds.append(
                measure_round(pg, catalog_db, size, OUT / f"round-{i + 1}", args.compress, i)
            )
            print(json.dumps(rounds[-1], ensure_ascii=False), flush=True)
        (OUT / "results.json").write_text(
            json.dumps(
                {
                    "size_bytes": size,
                    "scale": args.scale,
                    "rounds": rounds,
                    "ratios": ratios(rounds),
                    "medians": medians(rounds),
                    "best_of": best_of(rounds),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        print(markdown(size, rounds))
    finally:
        if args.keep:
            pg.stop()
        else:
            pg.destroy()


if __name__ == "__main__":
    main()
