"""Benchmark: daily inspection end to end through hisops.inspect.run (no scheduler).

50 databases in one throwaway PostgreSQL cluster + 50 "hosts" (one loopback sshd reached under 50
connection ids), grouped into systems like a hospital inventory, inspected the way the DAG does it:
one worker process per system (as one mapped Airflow task each), at most POOL_SLOTS systems at a
time (the `hisops_inspection` pool), each system's targets 8 at a time in threads; findings,
metrics and incidents written to a real catalog; then the report is rendered and saved.

    .venv/bin/python bench/inspection_e2e.py [--databases 50] [--hosts 50] [--systems 5] [--keep]

Everything lives in bench/out/inspection-bench/ and is removed afterwards (cluster stopped, sshd
stopped) unless --keep. Results are printed as a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "inspection-bench"
PG_PORT, SSH_PORT = 55611, 55612
POOL_SLOTS = 4  # hisops.airflow.pools.POOLS["hisops_inspection"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--databases", type=int, default=50)
    p.add_argument("--hosts", type=int, default=50)
    p.add_argument("--systems", type=int, default=5)
    p.add_argument("--threads", type=int, default=8, help="targets at once per system")
    p.add_argument("--slots", type=int, default=POOL_SLOTS, help="systems at once (pool slots)")
    p.add_argument("--rounds", type=int, default=2, help="inspection rounds (the 2nd sees history)")
    p.add_argument("--keep", action="store_true", help="keep cluster, sshd and files")
    p.add_argument("--pg-port", type=int, default=PG_PORT, help="port of the throwaway cluster")
    p.add_argument("--ssh-port", type=int, default=SSH_PORT, help="port of the loopback sshd")
    return p.parse_args()


# --------------------------------------------------------------------------- setup


def start_servers(pg_port: int = PG_PORT, ssh_port: int = SSH_PORT) -> tuple[Any, Any]:
    from hisops.devenv.pgcluster import PgCluster
    from hisops.devenv.sshd import LoopbackSshd

    cluster, sshd = PgCluster(OUT / "pg", pg_port), LoopbackSshd(OUT / "sshd", ssh_port)
    cluster.start()
    sshd.start()
    return cluster, sshd


def create_databases(cluster: Any, n: int) -> list[str]:
    names = [f"bench_db_{i:02d}" for i in range(n)]
    for name in names:
        if cluster.create_database(name):
            cluster.execute(
                "CREATE TABLE patient_visit (id bigserial PRIMARY KEY, patient_id int NOT NULL, "
                "visited_at timestamptz NOT NULL DEFAULT now(), note text); "
                "INSERT INTO patient_visit (patient_id, note) "
                "SELECT g % 500, md5(g::text) FROM generate_series(1, 2000) g; "
                "CREATE INDEX ON patient_visit (patient_id); ANALYZE patient_visit",
                dbname=name,
            )
    return names


def create_catalog(cluster: Any) -> str:
    from hisops.catalog.migrate import upgrade

    cluster.create_database("bench_catalog", drop_first=True)
    url = cluster.sqlalchemy_url("bench_catalog")
    upgrade(url)
    return url


def write_inventory(databases: list[str], hosts: int, systems: int) -> Path:
    import yaml

    groups: list[dict[str, Any]] = [
        {
            "id": f"sys_{s:02d}",
            "name": f"业务系统{s + 1:02d}",
            "name_en": f"System {s + 1:02d}",
            "databases": [],
            "hosts": [],
        }
        for s in range(systems)
    ]
    for i, db in enumerate(databases):
        groups[i % systems]["databases"].append({"id": db, "conn_id": db})
    for i in range(hosts):
        groups[i % systems]["hosts"].append(
            {"id": f"bench-host-{i:02d}", "ssh_conn_id": f"bench_ssh_{i:02d}", "disk_paths": ["/"]}
        )
    inventory = {
        "version": 1,
        "hospital": "基准测试医院 (Benchmark Hospital)",
        "timezone": "Asia/Shanghai",
        "maintenance_window": {"start": "01:00", "end": "05:00"},
        "backup_storage": {"path": str(OUT / "backups")},
        "reports": {"path": str(OUT / "reports")},
        "systems": groups,
    }
    path = OUT / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True, sort_keys=False))
    return path


# --------------------------------------------------------------------------- one system (worker
# process)


def inspect_one(
    system_id: str,
    inventory_path: str,
    catalog_url: str,
    run_pk: int,
    threads: int,
    servers: dict[str, Any],
) -> dict[str, Any]:
    """One mapped Airflow task, connections resolved from ``servers`` instead of Airflow."""
    from hisops.catalog.repository import CatalogRepository
    from hisops.inspect.run import Access, RunContext, inspect_system
    from hisops.inventory.loader import load_inventory
    from hisops.targets.runner import SshParams, SshRunner

    inv = load_inventory(inventory_path)
    repo = CatalogRepository.from_url(catalog_url, pool_size=2, max_overflow=2)
    pg = servers["pg"]

    def dsn_for(db: Any) -> str:
        return (
            f"host={pg['host']} port={pg['port']} user={pg['user']} "
            f"password={pg['password']} dbname={db.conn_id}"
        )

    def runner_for(host: Any) -> Any:
        ssh = servers["ssh"]
        return SshRunner(
            host.id,
            SshParams(
                host=ssh["host"],
                port=ssh["port"],
                username=ssh["user"],
                key_file=ssh["key"],
                connect_timeout=10,
            ),
        )

    started = time.monotonic()
    outcome = inspect_system(
        inv,
        inv.find_system(system_id),
        repo,
        RunContext(run_pk),
        Access(dsn_for, runner_for),
        max_workers=threads,
        progress=lambda line: None,
    )
    repo.dispose()
    gc.collect()  # close paramiko channel files while the interpreter is alive (no noise at exit)
    return {
        **outcome.as_dict(),
        "timings": outcome.timings,
        "process_seconds": time.monotonic() - started,
    }


def uncontended(
    inventory_path: Path, catalog_url: str, servers: dict[str, Any], k: int = 5
) -> dict[str, float]:
    """Per-target cost without concurrency: the first system's targets one at a time, k per kind."""
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.loader import load_inventory

    inv = load_inventory(inventory_path)
    repo = CatalogRepository.from_url(catalog_url)
    run_pk = repo.start_inspection_run(
        "daily_inspection", f"bench__sequential_{datetime.now():%H%M%S}"
    )
    repo.dispose()
    first = inv.systems[0]
    small = first.model_copy(update={"databases": first.databases[:k], "hosts": first.hosts[:k]})
    inv = inv.model_copy(update={"systems": [small]})
    path = OUT / "inventory-sequential.yaml"
    import yaml

    path.write_text(
        yaml.safe_dump(inv.model_dump(mode="json", exclude_defaults=True), allow_unicode=True)
    )
    result = inspect_one(small.id, str(path), catalog_url, run_pk, 1, servers)
    by_kind: dict[str, list[float]] = {}
    for key, seconds in result["timings"].items():
        by_kind.setdefault(key.split(":", 1)[0], []).append(seconds)
    return {kind: statistics.fmean(v) for kind, v in by_kind.items()}


# --------------------------------------------------------------------------- one round


def one_round(
    n: int,
    args: argparse.Namespace,
    inventory_path: Path,
    catalog_url: str,
    servers: dict[str, Any],
) -> dict[str, Any]:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.loader import load_inventory

    inv = load_inventory(inventory_path)
    repo = CatalogRepository.from_url(catalog_url)
    t0 = time.monotonic()
    run_pk = repo.start_inspection_run(
        "daily_inspection", f"bench__{datetime.now():%Y%m%dT%H%M%S}_{n}"
    )
    with ProcessPoolExecutor(max_workers=args.slots, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(
                inspect_one, s.id, str(inventory_path), catalog_url, run_pk, args.threads, servers
            )
            for s in inv.systems
        ]
        outcomes = [f.result() for f in futures]
    t_inspect = time.monotonic() - t0
    path = render(inv, repo, run_pk, outcomes)
    repo.finish_inspection_run(run_pk, "success", report_path=str(path))
    wall = time.monotonic() - t0
    findings = repo.findings_for(run_pk)
    repo.dispose()
    return summarize(n, outcomes, findings, wall, t_inspect, path)


def render(inv: Any, repo: Any, run_pk: int, outcomes: list[dict[str, Any]]) -> Path:
    from hisops.inspect.reporting import system_infos, trend_keys, trend_samples
    from hisops.report import ReportData, render_report, report_day, save_report

    now = datetime.now().astimezone()
    infos = system_infos(inv, [s.id for s in inv.systems])
    data = ReportData(
        hospital=inv.hospital,
        timezone=inv.timezone,
        run_id=f"bench-{run_pk}",
        generated_at=now,
        systems=infos,
        findings=repo.findings_for(run_pk),
        open_incidents=repo.open_incidents(),
        changes=[c for o in outcomes for c in o["changes"]],
        samples=trend_samples(repo, trend_keys(inv, infos), now),
        logical_date=now,
        inspection_run_id=run_pk,
    )
    return save_report(
        render_report(data), inv.resolve_path(inv.reports.path), report_day(data), data.run_id
    )


def summarize(
    n: int,
    outcomes: list[dict[str, Any]],
    findings: list[Any],
    wall: float,
    t_inspect: float,
    path: Path,
) -> dict[str, Any]:
    timings = [s for o in outcomes for s in o["timings"].values()]
    by_kind: dict[str, list[float]] = {}
    for o in outcomes:
        for key, seconds in o["timings"].items():
            by_kind.setdefault(key.split(":", 1)[0], []).append(seconds)
    severities: dict[str, int] = {}
    for f in findings:
        severities[f.severity] = severities.get(f.severity, 0) + 1
    return {
        "round": n,
        "wall_s": wall,
        "inspect_s": t_inspect,
        "report_s": wall - t_inspect,
        "targets": len(timings),
        "findings": len(findings),
        "severities": severities,
        "per_target": {k: _stats(v) for k, v in sorted(by_kind.items())},
        "all": _stats(timings),
        "systems_s": sorted(round(o["process_seconds"], 1) for o in outcomes),
        "report": str(path),
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "p95": p95,
        "max": ordered[-1],
    }


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| round | wall (s) | inspect (s) | report (s) | targets | findings | per-target mean / "
        "median / p95 / max (s) "
        "| database mean (s) | host mean (s) | per-system process (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a, k = r["all"], r["per_target"]
        lines.append(
            f"| {r['round']} | {r['wall_s']:.1f} | {r['inspect_s']:.1f} | {r['report_s']:.1f} | "
            f"{r['targets']} "
            f"| {r['findings']} {json.dumps(r['severities'])} | {a['mean']:.2f} / "
            f"{a['median']:.2f} / {a['p95']:.2f} "
            f"/ {a['max']:.2f} | {k.get('database', {}).get('mean', 0):.2f} | "
            f"{k.get('host', {}).get('mean', 0):.2f} "
            f"| {r['systems_s']} |"
        )
    lines.append(
        f"\n{args.databases} databases + {args.hosts} hosts in {args.systems} systems, "
        f"{args.slots} systems at once, {args.threads} threads per system."
    )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    cluster, sshd = start_servers(args.pg_port, args.ssh_port)
    try:
        databases = create_databases(cluster, args.databases)
        catalog_url = create_catalog(cluster)
        inventory_path = write_inventory(databases, args.hosts, args.systems)
        servers = {
            "pg": {
                "host": cluster.host,
                "port": cluster.port,
                "user": cluster.user,
                "password": cluster.password,
            },
            "ssh": {
                "host": sshd.host,
                "port": sshd.port,
                "user": sshd.user,
                "key": str(sshd.client_key),
            },
        }
        print(
            f"setup: {time.monotonic() - t0:.1f}s (cluster, sshd, {len(databases)} databases, "
            f"catalog)",
            flush=True,
        )
        alone = uncontended(inventory_path, catalog_url, servers)
        print(f"uncontended per-target cost (one at a time): {json.dumps(alone)}", flush=True)
        results = []
        for n in range(1, args.rounds + 1):
            results.append(one_round(n, args, inventory_path, catalog_url, servers))
            print(json.dumps(results[-1], ensure_ascii=False, default=str), flush=True)
        print(markdown(results, args))
        print(
            f"\nUncontended (one target at a time): database {alone.get('database', 0):.2f} s, "
            f"host {alone.get('host', 0):.2f} s per target."
        )
    finally:
        if not args.keep:
            sshd.stop()
            cluster.destroy()
            shutil.rmtree(OUT, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "include"))
    sys.exit(main())
