"""Benchmark: catalog pruning (roll-up + batched delete) of many metric rows while an inspection-
like
inserter keeps writing.

A private PostgreSQL cluster holds a migrated catalog with ``--rows`` metric samples older than the
retention (spread over 100 days, 50 targets × 4 metrics) plus recent ones. Phase A: the inserter
alone (reference latency). Phase B: ``hisops.cleanup.records.prune_records`` runs (real code,
batches of ``--batch`` rows) while the same inserter writes 40 samples every 50 ms through
``CatalogRepository.add_metric_samples`` (what an inspection does) and a sampler polls ``pg_locks``
(``waitstart``, PostgreSQL ≥ 14) every 20 ms for any lock the inserter waits on.

    .venv/bin/python bench/cleanup_catalog.py [--rows 10000000] [--batch 5000] [--keep]

Files in bench/out/cleanup-catalog/ (cluster on a free port), removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "cleanup-catalog"


def load(url: str, rows: int) -> float:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    t0 = time.monotonic()
    chunk = 1_000_000
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE hisops.metric_sample SET (autovacuum_enabled = true)"))
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO hisops.metric_sample (target_id, metric, value, observed_at) "
                    "SELECT 'db' || (g % 50), "
                    "(ARRAY['connections_pct','cache_hit_pct','xid_age_pct','fs_used_pct'])"
                    "[1 + g % 4], (g % 1000) / 10.0, now() - interval '100 days' - (g % 8640000) * "
                    "interval '1 second'"
                    " FROM generate_series(:a, :b) g"
                ),
                {"a": start, "b": start + n - 1},
            )
        print(f"  loaded {start + n:,} rows", flush=True)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO hisops.metric_sample (target_id, metric, value, observed_at) "
                "SELECT 'db1', 'connections_pct', 1, now() - g * interval '1 hour' "
                "FROM generate_series(1, 1000) g"
            )
        )
        conn.execute(text("ANALYZE hisops.metric_sample"))
    engine.dispose()
    return time.monotonic() - t0


class Inserter(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        from hisops.catalog.repository import CatalogRepository

        self.repo = CatalogRepository.from_url(url, pool_size=1)
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.pid: int | None = None

    def run(self) -> None:
        from hisops.catalog.records import MetricSample

        with self.repo.engine.connect() as conn:
            self.pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        while not self.stop.is_set():
            now = datetime.now(UTC)
            batch = [MetricSample(f"db{i}", "connections_pct", 42.0, now) for i in range(40)]
            t0 = time.monotonic()
            self.repo.add_metric_samples(batch)
            self.latencies.append(time.monotonic() - t0)
            time.sleep(0.05)


class LockSampler(threading.Thread):
    def __init__(self, url: str, inserter: Inserter) -> None:
        super().__init__(daemon=True)
        from sqlalchemy import create_engine

        self.engine, self.inserter = create_engine(url), inserter
        self.longest = 0.0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            while not self.stop.is_set():
                waited = conn.execute(
                    text(
                        "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - waitstart)), "
                        "0) FROM pg_locks "
                        "WHERE NOT granted AND pid = :p"
                    ),
                    {"p": self.inserter.pid or -1},
                ).scalar_one()
                self.longest = max(self.longest, float(waited))
                self.samples += 1
                conn.commit()
                time.sleep(0.02)


def phase(url: str, seconds: float | None, work=None) -> dict:
    inserter = Inserter(url)
    sampler = LockSampler(url, inserter)
    inserter.start()
    while inserter.pid is None:
        time.sleep(0.01)
    sampler.start()
    t0 = time.monotonic()
    result = work() if work else time.sleep(seconds)
    took = time.monotonic() - t0
    inserter.stop.set()
    sampler.stop.set()
    inserter.join()
    sampler.join()
    lat = sorted(inserter.latencies)
    return {
        "seconds": round(took, 1),
        "inserts": len(lat),
        "insert_ms_median": round(statistics.median(lat) * 1000, 1),
        "insert_ms_p99": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1),
        "insert_ms_max": round(lat[-1] * 1000, 1),
        "longest_lock_wait_ms": round(sampler.longest * 1000, 1),
        "lock_samples": sampler.samples,
        "result": result,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    from hisops.catalog.migrate import upgrade
    from hisops.catalog.repository import CatalogRepository
    from hisops.cleanup.records import prune_records
    from hisops.devenv.pgcluster import PgCluster
    from hisops.inventory.loader import load_inventory

    OUT.mkdir(parents=True, exist_ok=True)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = PgCluster(OUT / "pg", port)
    cluster.start()
    results: dict = {"rows": args.rows, "batch": args.batch, "load_before": os.getloadavg()}
    try:
        cluster.create_database("bench_catalog")
        url = cluster.sqlalchemy_url("bench_catalog")
        upgrade(url)
        results["load_seconds"] = round(load(url, args.rows), 1)
        inv_path = OUT / "inventory.yaml"
        inv_path.write_text(f"""version: 1
hospital: bench
maintenance_window: {{start: "01:00", end: "05:00"}}
backup_storage: {{path: {OUT}/backups}}
reports: {{path: {OUT}/reports}}
record_retention: {{metric_samples_days: 90, batch_rows: {args.batch}}}
systems: [{{id: s, name: 测试, name_en: bench}}]
""")
        inv = load_inventory(inv_path)
        repo = CatalogRepository.from_url(url)
        results["alone"] = phase(url, 20)
        print("phase A (inserter alone):", json.dumps(results["alone"]), flush=True)

        def prune():
            steps = prune_records(repo, inv, dry_run=False, log=lambda _m: None)
            step = next(s for s in steps if s.item == "metric_sample")
            return {"rows": step.rows, "batches": step.details.get("batches"), "state": step.state}

        results["pruning"] = phase(url, None, prune)
        pr = results["pruning"]
        pr["rows_per_second"] = round(pr["result"]["rows"] / pr["seconds"])
        print("phase B (pruning + inserter):", json.dumps(pr), flush=True)
        with repo.engine.connect() as conn:
            results["daily_rows"] = conn.exec_driver_sql(
                "SELECT count(*) FROM hisops.metric_daily"
            ).scalar_one()
            results["left_old"] = conn.exec_driver_sql(
                "SELECT count(*) FROM hisops.metric_sample WHERE observed_at < now() - interval "
                "'90 days'"
            ).scalar_one()
        results["load_after"] = os.getloadavg()
        repo.dispose()
    finally:
        (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
        if not args.keep:
            cluster.destroy()
            shutil.rmtree(OUT / "pg", ignore_errors=True)
    print(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
