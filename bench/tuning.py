"""Tuning benchmark (issue 11): performance_review and db_maintenance on a scale-5 synthetic
hospital.

    .venv/bin/python bench/tuning.py --scale 5 --rows 400000 --pgbench-seconds 40

Builds a throwaway PostgreSQL 15 cluster (port 55611, under bench/out/tuning/), a synthetic hospital
database (``hisops.synth.generate``) plus the planted problems of ``hisops.devenv.tuning_plant``
(pharmacy_dispense_log: frequent lookup by prescription number without an index, an unused and a
duplicate index, bloat by updates/deletes) and bloat on synthetic tables (updates of
outpatient_visit, deletes of lab_result). Then, with a pgbench read/write workload on loopback:

1. baseline TPS (pgbench alone) and the slow lookup's mean time;
2. performance_review in a child process (peak RSS via getrusage), its session time, the planted
   suggestion with its cost drop, and a check that no suggestion duplicates an existing btree;
3. the create-index and drop-index proposals approved, a verified backup registered (the backup
   itself is not what is measured here), db_maintenance applied (lock_timeout 2 s, 3 retries) while
   pgbench runs; a sampler (every 50 ms) records how long any workload backend waited on a lock held
   or queued by the maintenance backend;
4. TPS during vs before, bloat before/after per object, total maintenance time, the slow lookup's
   mean after the index (ratio).

Results: bench/out/tuning/results.json and Markdown on stdout. The cluster is destroyed unless
--keep.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "tuning"
DB = "his_outpatient"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
WORKLOAD = """\\set p random(1, {visits})
\\set v random(1, {visits})
\\set n random(1, {rows})
BEGIN;
SELECT visit_id, visit_time, fee FROM outpatient_visit WHERE patient_id = :p;
SELECT log_id, quantity FROM pharmacy_dispense_log WHERE log_id = :n;
UPDATE outpatient_visit SET fee = fee WHERE visit_id = :v;
SELECT count(*) FROM pharmacy_dispense_log WHERE drug_id = 7 AND log_id < 2000;
END;
"""


def load() -> float:
    return os.getloadavg()[0]


def sql(dsn: str, query: str, args=None):
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(query, args)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def prepare(pg, scale: float, rows: int) -> None:
    from hisops.devenv.tuning_plant import plant
    from hisops.synth.generate import generate

    if not pg.database_exists(DB):
        pg.create_database(DB)
        t0 = time.monotonic()
        generate(pg.dsn(DB), scale, seed=11, log=lambda m: print(m, flush=True))
        print(f"generated scale {scale} in {time.monotonic() - t0:.0f}s", flush=True)
        sql(
            pg.dsn(DB),
            "UPDATE outpatient_visit SET visit_time = visit_time + interval '1 second' "
            "WHERE visit_id % 2 = 0",
        )  # bloats the table and every index on it
        sql(pg.dsn(DB), "DELETE FROM lab_result WHERE result_id % 4 = 0")
        sql(pg.dsn(DB), "ANALYZE")
        plant(pg.dsn(DB), rows)
    for name in ("hisops_catalog",):
        if not pg.database_exists(name):
            pg.create_database(name)
    from hisops.catalog.migrate import upgrade

    upgrade(pg.sqlalchemy_url("hisops_catalog"))


def inventory_file(tmp: Path) -> Path:
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (
        (now - timedelta(hours=1)).strftime("%H:%M"),
        (now + timedelta(hours=3)).strftime("%H:%M"),
    )
    path = tmp / "inventory.yaml"
    path.write_text(f"""version: 1
hospital: 基准测试医院
maintenance_window: {{start: "{start}", end: "{end}"}}
backup_storage: {{path: {tmp}/backups}}
reports: {{path: {tmp}/reports}}
systems:
  - {{id: s1, name: 门诊系统, name_en: Outpatient, databases: [{{id: {DB}, conn_id: bench_db}}]}}
""")
    return path


def pgbench(pg, seconds: int, tag: str, clients: int = 4) -> dict:
    script = OUT / "workload.sql"
    visits = int(sql(pg.dsn(DB), "SELECT max(visit_id) FROM outpatient_visit")[0][0])
    rows = int(sql(pg.dsn(DB), "SELECT max(log_id) FROM pharmacy_dispense_log")[0][0])
    script.write_text(WORKLOAD.format(visits=visits, rows=rows))
    logdir = OUT / f"pgbench-{tag}"
    logdir.mkdir(exist_ok=True)
    for f in logdir.glob("*"):
        f.unlink()
    env = {**os.environ, "PGPASSWORD": pg.password}
    proc = subprocess.Popen(
        [
            PGBENCH,
            "-n",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            str(script),
            "-l",
            "--log-prefix",
            str(logdir / "tx"),
            "-h",
            pg.host,
            "-p",
            str(pg.port),
            "-U",
            pg.user,
            DB,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    return {"proc": proc, "logdir": logdir}


def pgbench_result(run: dict) -> dict:
    out, _ = run["proc"].communicate()
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    lat = [
        int(line.split()[2]) / 1000
        for f in run["logdir"].glob("tx*")
        for line in f.read_text().splitlines()
    ]
    return {
        "tps": tps,
        "transactions": len(lat),
        "max_latency_ms": max(lat) if lat else None,
        "p99_latency_ms": sorted(lat)[int(len(lat) * 0.99)] if lat else None,
    }


def slow_mean(pg, calls: int, rows: int) -> float:
    from hisops.devenv.tuning_plant import run_workload

    return run_workload(pg.dsn(DB), calls=calls, rows=rows)


def review_child(pg, inv_path: Path) -> dict:
    code = f"""
import json, os, resource
os.environ["HISOPS_INVENTORY"] = {str(inv_path)!r}
from hisops.catalog.repository import CatalogRepository
from hisops.inventory.loader import load_inventory
from hisops.runinfo import RunInfo
from hisops.tune.review import review_database
repo = CatalogRepository.from_url({pg.sqlalchemy_url("hisops_catalog")!r})
inv = load_inventory({str(inv_path)!r})
run = RunInfo("performance_review", "bench", triggering_user="bench")
r = review_database(repo, inv, {DB!r}, {pg.dsn(DB)!r}, run)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"server_ms": r.server_ms, "suggestions": r.advice["suggestions"],
                  "health": r.health, "proposals": r.proposals, "peak_rss_mb": rss_mb}},
                 ensure_ascii=False, default=str))
"""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = round(time.monotonic() - t0, 2)
    return result


class LockSampler(threading.Thread):
    """Every 50 ms: workload backends waiting on a lock a maintenance backend holds or queues."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        import psycopg2

        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.stop = threading.Event()
        self.max_wait_s = 0.0
        self.samples = 0
        self.waiting_seen = 0

    def run(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute("""SELECT coalesce(max(extract(epoch FROM now() - w.query_start)), 0),
                    count(*)
                    FROM pg_stat_activity w
                    WHERE w.application_name = 'pgbench' AND w.wait_event_type = 'Lock'
                      AND EXISTS (SELECT 1 FROM pg_stat_activity m WHERE m.pid =
                          ANY(pg_blocking_pids(w.pid))
                                  AND m.application_name LIKE 'hisops-maintenance%')""")
                wait, n = cur.fetchone()
                self.max_wait_s, self.samples = max(self.max_wait_s, float(wait)), self.samples + 1
                self.waiting_seen += n
                time.sleep(0.05)
        self.conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=5)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--pgbench-seconds", type=int, default=40)
    ap.add_argument("--port", type=int, default=55611)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    from hisops.devenv.pgcluster import PgCluster

    OUT.mkdir(parents=True, exist_ok=True)
    pg = PgCluster(OUT / "pg", args.port)
    pg.start()
    results: dict = {"scale": args.scale, "rows": args.rows, "load_start": load()}
    try:
        results.update(run(pg, args))
    finally:
        if not args.keep:
            pg.destroy()
    (OUT / "results.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, default=str)
    )
    print(json.dumps(results, indent=1, ensure_ascii=False, default=str))


def run(pg, args) -> dict:
    import psycopg2  # noqa: F401
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.loader import load_inventory
    from hisops.roles import SYSTEM_ADMIN
    from hisops.runinfo import RunInfo
    from hisops.safeguards.approval import ApprovalRequest, check_approval
    from hisops.tune import advisor
    from hisops.tune import maintenance as m

    t0 = time.monotonic()
    prepare(pg, args.scale, args.rows)
    r: dict = {
        "prepare_s": round(time.monotonic() - t0, 1),
        "db_bytes": int(sql(pg.dsn(DB), "SELECT pg_database_size(current_database())")[0][0]),
    }
    r["slow_mean_before_ms"] = slow_mean(pg, 150, args.rows)  # also the pg_stat_statements history
    inv_path = inventory_file(OUT)
    os.environ["HISOPS_INVENTORY"] = str(inv_path)
    r["review"] = review_child(pg, inv_path)
    r["review"]["load"] = load()
    btrees: dict = {}
    for schema, table, _i, cols, _u, partial in sql(pg.dsn(DB), advisor.Q.BTREE_KEYS):
        if not partial:
            btrees.setdefault(f"{schema}.{table}", []).append(tuple(cols))
    sugg = r["review"]["suggestions"]
    r["duplicates_existing"] = [
        s["name"] for s in sugg if advisor.covered(s["table"], tuple(s["columns"]), btrees)
    ]
    r["duplicate_suggestions"] = len(sugg) - len({(s["table"], tuple(s["columns"])) for s in sugg})
    r["planted_suggested"] = [
        {
            k: s[k]
            for k in (
                "name",
                "cost_before",
                "cost_after",
                "drop_pct",
                "mean_ms",
                "saved_ms_per_day",
            )
        }
        for s in sugg
        if s["table"] == "public.pharmacy_dispense_log" and s["columns"][0] == "prescription_no"
    ]
    repo = CatalogRepository.from_url(pg.sqlalchemy_url("hisops_catalog"))
    inv = load_inventory(inv_path)
    run_info = RunInfo("db_maintenance", f"bench_{int(time.time())}", triggering_user="operator")
    for p in repo.proposals(DB, states=("proposed",)):
        if p.kind == "create_index" or p.object_name in (
            "public.ix_dispense_time",
            "public.ix_dispense_drug_dup",
        ):
            repo.move_proposal(p.id, ("proposed",), "approved", by="sysadmin")
    import hashlib

    folder = OUT / "backups" / f"b{int(time.time())}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text('{"files": []}')
    bid = repo.register_backup_start(DB, "s1", "database", str(folder))
    repo.complete_backup(
        bid, {"files": []}, hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(), 1
    )
    repo.mark_backup_verified(bid)

    base = pgbench(pg, args.pgbench_seconds, "before")
    r["pgbench_before"] = pgbench_result(base)
    plan = m.plan_database(repo, inv, DB, pg.dsn(DB), run_info)
    r["plan"] = [(s.kind, s.object) for s in plan.steps]
    approval = check_approval(
        ApprovalRequest("operator", "sysadmin", frozenset({SYSTEM_ADMIN}), True)
    )
    during = pgbench(pg, args.pgbench_seconds + 30, "during")
    sampler = LockSampler(pg.dsn(DB))
    time.sleep(3)
    sampler.start()
    t1 = time.monotonic()
    res = m.apply_plan(repo, inv, DB, pg.dsn(DB), plan, run_info, approval=approval, dry_run=False)
    r["maintenance_s"] = round(time.monotonic() - t1, 2)
    sampler.stop.set()
    sampler.join()
    r["pgbench_during"] = pgbench_result(during)
    r["tps_ratio_during_vs_before"] = round(
        r["pgbench_during"]["tps"] / r["pgbench_before"]["tps"], 3
    )
    r["max_lock_wait_s"] = round(sampler.max_wait_s, 3)
    r["lock_samples"] = sampler.samples
    r["lock_waits_seen"] = sampler.waiting_seen
    r["steps"] = [
        {
            "kind": s.kind,
            "object": s.object,
            "state": s.state,
            "seconds": s.seconds,
            "attempts": s.attempts,
            "reason": s.reason,
            "bytes": [s.before.get("bytes"), s.after.get("bytes")],
            "bloat_bytes": [s.before.get("bloat_bytes"), s.after.get("bloat_bytes")],
        }
        for s in res.steps
    ]
    r["post_checks"] = res.post_checks
    r["slow_mean_after_ms"] = slow_mean(pg, 150, args.rows)
    r["slow_mean_ratio_after_vs_before"] = round(
        r["slow_mean_after_ms"] / r["slow_mean_before_ms"], 4
    )
    r["load_end"] = load()
    r["peak_rss_bench_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    repo.dispose()
    return r


if __name__ == "__main__":
    main()
