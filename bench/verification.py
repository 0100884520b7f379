"""Benchmark: a full hisops restore drill vs a raw ``pg_restore -j2`` into an empty database.

Goal (issue 3): verification (checksums, restore, all expectations, amcheck) ≤ 1.3 × the raw
restore; peak memory (RSS of the process tree) < 300 MB whatever the database size.

Builds its own PostgreSQL 15 cluster (port 55631, under ``bench/out/verification/``, git-ignored),
generates the synthetic HIS database (``hisops.synth``, scale 24 ≈ 2.3 GB, seed 7; kept between
runs), takes one real hisops backup of it (``hisops.backup.dump.backup_database``: pg_dump -Fd -j2
-Z5, manifest, catalog) and then, side by side in one run, for each round (order alternates):

- raw:   ``pg_restore -j2 -d <empty database> <backup>/dump`` (what a DBA would type);
- drill: a fresh Python process running ``hisops.verify.drill.run_drill`` on that backup — manifest
  and SHA-256 of every file, scratch database, ``pg_restore -j2``, the GX suite (mode ``fast`` by
  default), schema comparison, amcheck on every btree index, Data Docs evidence, DROP of the scratch
  database.

Both are timed as wall clock of the whole process tree; RSS of each tree is sampled every 50 ms
(psutil).

    .venv/bin/python bench/verification.py [--rounds 2] [--scale 24] [--mode fast|deep] [--deep-too]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "verification"
DB = "his_bench"
SEED = 7
CATALOG = "hisops_bench_catalog"


# --- measuring
# -------------------------------------------------------------------------------------


class TreeSampler:
    """Peak summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        import psutil

        self.root, self.every, self.peak, self.detail = psutil.Process(pid), every, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        procs = [self.root, *self.root.children(recursive=True)]
        sizes = []
        for p in procs:
            try:
                sizes.append((p.name(), p.memory_info().rss))
            except psutil.Error:
                continue
        total = sum(s for _, s in sizes)
        if total > self.peak:
            self.peak, self.detail = total, sorted(sizes, key=lambda x: -x[1])[:5]

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self._sample()
            self._stop.wait(self.every)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(
    argv: list[str], env: dict[str, str] | None = None, capture: bool = False
) -> dict[str, Any]:
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err[-2000:]}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(sampler.peak / 2**20, 1),
        "load": round(load, 2),
        "top": [(n, round(r / 2**20, 1)) for n, r in sampler.detail],
        "stdout": out,
    }


# --- setting up
# ------------------------------------------------------------------------------------


def cluster(port: int):
    from hisops.devenv.pgcluster import PgCluster

    pg = PgCluster(OUT / "pg", port)
    pg.start()
    return pg


def _marker(pg) -> str:
    import psycopg2

    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (DB,),
        )
        row = cur.fetchone()
    conn.close()
    return (row[0] or "") if row else ""


def ensure_database(pg, scale: float) -> int:
    """The synthetic database at ``scale`` (regenerated if missing or another scale); its size."""
    from hisops.synth.generate import generate

    wanted = f"hisops bench scale={scale:g} seed={SEED}"
    if _marker(pg) != wanted:
        print(f"generating {DB} at scale {scale:g} (a few minutes) …", flush=True)
        pg.create_database(DB, drop_first=True)
        generate(pg.dsn(DB), scale, seed=SEED, jobs=2, log=lambda m: print("  " + m, flush=True))
        pg.execute(f"COMMENT ON DATABASE {DB} IS '{wanted}'")
    return database_size(pg, DB)


def database_size(pg, name: str) -> int:
    import psycopg2

    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(%s)", (name,))
        size = cur.fetchone()[0]
    conn.close()
    return int(size)


def catalog(pg):
    from hisops.catalog.migrate import upgrade
    from hisops.catalog.repository import CatalogRepository

    pg.create_database(CATALOG)
    upgrade(pg.sqlalchemy_url(CATALOG))
    return CatalogRepository.from_url(pg.sqlalchemy_url(CATALOG))


def ensure_backup(pg, repo, fresh: bool) -> Any:
    """The newest completed backup of the bench database whose files exist, else a new one."""
    from hisops.backup.dump import DumpSpec, backup_database

    found = [
        b
        for b in repo.backups_for(DB, states=("completed", "verified"))
        if b.path and Path(b.path).is_dir()
    ]
    if found and not fresh:
        return found[0]
    print("backing up (hisops db_backup engine: pg_dump -Fd -j2 -Z5 + manifest) …", flush=True)
    spec = DumpSpec(
        database_id=DB,
        system_id="bench",
        dsn=pg.dsn(DB),
        storage=OUT / "backups",
        jobs=2,
        compress=5,
        actor="bench",
    )
    outcome = backup_database(spec, repo)
    return repo.get_backup(outcome.backup_id)


# --- the two contenders
# ------------------------------------------------------------------------------


def raw_restore(pg, dump: Path) -> dict[str, Any]:
    from hisops.verify.scratch import find_pg_restore

    target = "bench_raw_restore"
    pg.create_database(target, drop_first=True)
    env = {**os.environ, "PGPASSWORD": pg.password}
    argv = [
        str(find_pg_restore()),
        "-j2",
        "-h",
        pg.host,
        "-p",
        str(pg.port),
        "-U",
        pg.user,
        "-d",
        target,
        str(dump),
    ]
    try:
        return {**timed(argv, env), "command": " ".join(argv)}
    finally:
        pg.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")


def drill(pg, record: Any, mode: str) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--port",
        str(pg.port),
        "--backup-id",
        str(record.id),
        "--backup-dir",
        record.path,
        "--mode",
        mode,
    ]
    result = timed(argv, capture=True)
    child = json.loads(result.pop("stdout").strip().splitlines()[-1])
    return {**result, "drill": child, "command": " ".join(argv[1:])}


def child(args: argparse.Namespace) -> None:
    """Inside the measured process: one drill, the way the Airflow task runs it; JSON on stdout."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from hisops.devenv.pgcluster import PgCluster
    from hisops.inventory.models import Database
    from hisops.verify.drill import DrillRequest, run_drill

    pg = PgCluster(
        OUT / "pg", args.port
    )  # already running: no pg_ctl calls inside the measured process
    db = Database(
        id=DB,
        conn_id="bench",
        critical_tables=["patient", "outpatient_visit", "prescription"],
        critical_columns={"patient": ["patient_id", "name", "id_card_no"]},
    )
    start = time.monotonic()
    result = run_drill(
        DrillRequest(
            backup_id=args.backup_id,
            database_id=DB,
            backup_dir=Path(args.backup_dir),
            server_dsn=pg.dsn(),
            evidence_root=OUT / "evidence",
            database=db,
            jobs=2,
            mode=args.mode,
        )
    )
    print(
        json.dumps(
            {
                "ok": result.ok,
                "fault": result.fault,
                "failures": result.failures[:5],
                "checks": result.checks_total,
                "amcheck_indexes": result.amcheck.get("checked"),
                "restore_seconds": result.restore_seconds,
                "timings": result.timings,
                "in_process_seconds": round(time.monotonic() - start, 2),
                "evidence": result.evidence_path,
            }
        )
    )


# --- reporting
# ---------------------------------------------------------------------------------------


def report(
    rounds: list[dict[str, Any]], size: int, backup: Any, deep: dict[str, Any] | None
) -> dict[str, Any]:
    ratios = [r["drill"]["seconds"] / r["raw"]["seconds"] for r in rounds]
    for i, r in enumerate(rounds, 1):
        d, t = r["drill"], r["drill"]["drill"]["timings"]
        print(
            f"round {i} ({r['order']}): raw pg_restore -j2 {r['raw']['seconds']:.1f}s "
            f"(load {r['raw']['load']}, peak {r['raw']['peak_rss_mb']} MiB) | drill "
            f"{d['seconds']:.1f}s "
            f"(load {d['load']}, peak {d['peak_rss_mb']} MiB {d['top']}) → ratio "
            f"{ratios[i - 1]:.3f}; "
            f"drill steps {t}; checks {d['drill']['checks']}, ok {d['drill']['ok']}"
        )
    summary = {
        "database_bytes": size,
        "backup_bytes": backup.size_bytes,
        "rounds": rounds,
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "drill_peak_rss_mib": max(r["drill"]["peak_rss_mb"] for r in rounds),
        "deep": deep,
    }
    print(
        f"database {size / 1e9:.2f} GB ({size / 2**30:.2f} GiB), backup "
        f"{backup.size_bytes / 2**20:.0f} MiB; "
        f"ratio median {summary['ratio_median']}, max {summary['ratio_max']}; "
        f"drill peak RSS {summary['drill_peak_rss_mib']} MiB"
    )
    if deep:
        print(
            f"deep mode (one run): drill {deep['seconds']:.1f}s, peak {deep['peak_rss_mb']} MiB, "
            f"steps {deep['drill']['timings']}"
        )
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, default=55631)
    ap.add_argument("--scale", type=float, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mode", choices=["fast", "deep"], default="fast")
    ap.add_argument(
        "--deep-too", action="store_true", help="one extra drill in deep mode, for information"
    )
    ap.add_argument("--fresh-backup", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backup-id", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--backup-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    OUT.mkdir(parents=True, exist_ok=True)
    pg = cluster(args.port)
    size = ensure_database(pg, args.scale)
    repo = catalog(pg)
    record = ensure_backup(pg, repo, args.fresh_backup)
    dump = Path(record.path) / "dump"
    rounds = []
    for i in range(args.rounds):
        order = ("raw", "drill") if i % 2 == 0 else ("drill", "raw")
        measured = {
            name: raw_restore(pg, dump) if name == "raw" else drill(pg, record, args.mode)
            for name in order
        }
        rounds.append({**measured, "order": " then ".join(order)})
    deep = drill(pg, record, "deep") if args.deep_too else None
    summary = report(rounds, size, record, deep)
    (OUT / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"raw command:   {rounds[0]['raw']['command']}")
    print(f"drill command: .venv/bin/python {rounds[0]['drill']['command']}")


if __name__ == "__main__":
    main()
