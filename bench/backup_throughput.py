"""Backup throughput benchmark (issues 3 and 8): hisops db backup vs raw pg_dump, same level.

    .venv/bin/python bench/backup_throughput.py --scale 22 --rounds 3
    .venv/bin/python bench/backup_throughput.py --small            # quick check (< 2 min)
    .venv/bin/python bench/backup_throughput.py --baseline-include /tmp/old/include  # old code too

Builds a throwaway PostgreSQL cluster (port 55621, under bench/out/backup/), generates a synthetic
hospital database (scale 22 ≈ 2.1 GB), reads it once (warm cache), then in each round measures, side
by side, interleaved (the order is reversed every other round: A B C D / D C B A, so hisops and the
raw command at its level always run next to each other):

- hisops ``run_database_backup`` (the db_backup task body: exported snapshot, row counts, schema
  fingerprint, pg_dump -Fd -j2, SHA-256 of every file, globals, manifest, fsync, atomic rename,
  catalog row) at each ``--compress`` level — in a child process whose process tree (python +
  pg_dump workers) is sampled for peak RSS;
- ``pg_dump -Fd -j2 -Z<level>`` at each of those levels: **the equal-level comparison that counts**;
- ``pg_dump -Fd -j2`` at its default level (gzip 6): the old headline row;
- with ``--baseline-include``: the same hisops task body from another checkout's ``include/``;
- with ``--with-fc``: ``pg_dump -Fc`` (what a hospital's cron script does).

Throughput = pg_database_size / wall seconds; ratio = raw seconds / hisops seconds. Results:
bench/out/backup/results.json and a Markdown table on stdout. The cluster is destroyed at the end
unless --keep (reuse it with the same --scale).
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
    """Run a command; (wall seconds, peak tree RSS in bytes sampled every 50 ms, stdout)."""
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


def hisops_child_env(
    pg, catalog_db: str, store: Path, compress: int, include: str | None = None
) -> dict[str, str]:
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
    extra = {"PYTHONPATH": include} if include else {}

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
        **extra,
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
    pg,
    catalog_db: str,
    size: int,
    work: Path,
    compress_levels: list[int],
    index: int,
    baseline: str | None = None,
    with_fc: bool = False,
    with_default: bool = True,
) -> list[dict]:
    """One measurement of every contender, interleaved: A B C D in even rounds, D C B A in odd."""
    env = pg_env(pg)
    shutil.rmtree(work, ignore_errors=True)  # a failed earlier run's leftovers
    work.mkdir(parents=True)

    def pg_dump(name: str, args: list[str], out: Path) -> dict:
        secs, rss, _ = run_tree([str(PG_BIN / "pg_dump"), *args, "-f", str(out), DBNAME], env)
        return row(name, secs, rss, size, dir_size(out))

    def hisops(z: int, include: str | None = None) -> dict:
        # one store for every hisops run (its storage marker is checked against the catalog's)
        store = OUT / "store"
        wall, rss, out = run_tree(
            [sys.executable, "-c", HISOPS_CHILD],
            hisops_child_env(pg, catalog_db, store, z, include),
            stdout=subprocess.PIPE,
        )
        task = json.loads(out.strip().splitlines()[-1])
        r = row(hisops_name(z, bool(include)), task["task_seconds"], rss, size, task["size_bytes"])
        shutil.rmtree(task["path"])
        return {**r, "process_wall_seconds": round(wall, 2), "backup_id": task["backup_id"]}

    contenders = []
    for z in compress_levels:
        contenders.append(lambda z=z: hisops(z))
        contenders.append(
            lambda z=z: pg_dump(raw_name(z), ["-Fd", "-j2", f"-Z{z}"], work / f"z{z}")
        )
        if baseline:
            contenders.append(lambda z=z: hisops(z, baseline))
    if with_default:
        contenders.append(lambda: pg_dump(FD, ["-Fd", "-j2"], work / "raw-fd"))
    if with_fc:
        contenders.append(lambda: pg_dump(FC, ["-Fc"], work / "cron.dump"))
    if index % 2:
        contenders.reverse()
    results = []
    for position, run in enumerate(contenders):
        load = os.getloadavg()[0]
        results.append({**run(), "load_1min_before": round(load, 2), "position": position})
    shutil.rmtree(work, ignore_errors=True)
    return results


FC = "pg_dump -Fc (default compression)"
FD = "pg_dump -Fd -j2 (default compression, gzip 6)"


def raw_name(z: int) -> str:
    return f"pg_dump -Fd -j2 -Z{z}"


def hisops_name(z: int, baseline: bool = False) -> str:
    return f"hisops db backup (jobs 2, compress {z}){' — baseline code' if baseline else ''}"


def row(name: str, secs: float, rss: int, size: int, out_bytes: int) -> dict:
    return {
        "name": name,
        "seconds": round(secs, 2),
        "mb_per_s": round(size / 1e6 / secs, 1),
        "peak_rss_mb": round(rss / 2**20, 1),
        "output_mb": round(out_bytes / 1e6, 1),
    }


def ratios(rounds: list[list[dict]]) -> list[dict]:
    """Per round and hisops run: raw at the same level / hisops (counts), raw default / hisops."""
    out = []
    for i, res in enumerate(rounds, 1):
        by = {r["name"]: r for r in res}
        for r in res:
            if not r["name"].startswith("hisops"):
                continue
            z = int(r["name"].split("compress ")[1].split(")")[0])
            same = by.get(raw_name(z))
            entry = {
                "round": i,
                "name": r["name"],
                "vs_same_level": round(same["seconds"] / r["seconds"], 3) if same else None,
                "vs_pg_dump_Fd_j2_default": (
                    round(by[FD]["seconds"] / r["seconds"], 3) if FD in by else None
                ),
                "peak_rss_mb": r["peak_rss_mb"],
            }
            if FC in by:
                entry["vs_pg_dump_Fc"] = round(by[FC]["seconds"] / r["seconds"], 3)
            out.append(entry)
    return out


def medians(rounds: list[list[dict]]) -> list[dict]:
    from statistics import median

    rs = ratios(rounds)
    out = []
    for n in sorted({r["name"] for r in rs}):
        mine = [r for r in rs if r["name"] == n]
        entry = {"name": n, "peak_rss_mb": max(r["peak_rss_mb"] for r in mine)}
        for key in ("vs_same_level", "vs_pg_dump_Fd_j2_default", "vs_pg_dump_Fc"):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                entry[key] = round(median(values), 3)
        out.append(entry)
    return out


def markdown(size: int, rounds: list[list[dict]]) -> str:
    lines = [
        f"database: {size / 1e9:.2f} GB (pg_database_size)",
        "",
        "| round | position | run | seconds | MB/s | peak RSS (MB) | output (MB) | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, res in enumerate(rounds, 1):
        lines += [
            f"| {i} | {r['position'] + 1} | {r['name']} | {r['seconds']} | {r['mb_per_s']} "
            f"| {r['peak_rss_mb']} | {r['output_mb']} | {r['load_1min_before']} |"
            for r in res
        ]
    lines += [
        "",
        "| round | hisops run | × raw same level | × pg_dump -Fd -j2 default | × -Fc | RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['round']} | {r['name']} | {r['vs_same_level']} | {r['vs_pg_dump_Fd_j2_default']} "
        f"| {r.get('vs_pg_dump_Fc', '')} | {r['peak_rss_mb']} |"
        for r in ratios(rounds)
    ]
    lines += [
        f"| median | {r['name']} | {r.get('vs_same_level')} | {r.get('vs_pg_dump_Fd_j2_default')} "
        f"| {r.get('vs_pg_dump_Fc', '')} | {r['peak_rss_mb']} (max) |"
        for r in medians(rounds)
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
        default=[1],
        help="hisops policy compress levels (each also raw at that level; default: the policy's 1)",
    )
    ap.add_argument(
        "--baseline-include",
        help="another checkout's include/ (e.g. a worktree of an older commit): its hisops too",
    )
    ap.add_argument("--with-fc", action="store_true", help="also pg_dump -Fc (issue 3's row)")
    ap.add_argument(
        "--no-default-level",
        action="store_true",
        help="leave out pg_dump -Fd -j2 at its default level (the slowest row)",
    )
    ap.add_argument("--small", action="store_true", help="quick check: scale 0.2, one round")
    ap.add_argument(
        "--keep", action="store_true", help="keep the cluster (and its data) for another run"
    )
    args = ap.parse_args()
    if args.small:
        args.scale, args.rounds = 0.2, 1
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
                measure_round(
                    pg,
                    catalog_db,
                    size,
                    OUT / f"round-{i + 1}",
                    args.compress,
                    i,
                    args.baseline_include,
                    args.with_fc,
                    not args.no_default_level,
                )
            )
            print(json.dumps(rounds[-1], ensure_ascii=False), flush=True)
        name = "results-small.json" if args.small else f"results-{time.strftime('%H%M')}.json"
        (OUT / name).write_text(
            json.dumps(
                {
                    "size_bytes": size,
                    "scale": args.scale,
                    "rounds": rounds,
                    "ratios": ratios(rounds),
                    "medians": medians(rounds),
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
