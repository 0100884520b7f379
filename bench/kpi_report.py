"""Benchmark: the 运维考核月报 (kpi_report) over a year of catalog data at hospital scale.

A throwaway PostgreSQL cluster gets a migrated catalog filled with one year (2025-12-01 …
2026-11-30, Asia/Shanghai) of what 200 databases + 200 hosts inspected daily leave behind, generated
by PostgreSQL itself (``generate_series``): inspection runs, findings (20 checks per database, 13
per host, every day), incidents, backups, restore drills, maintenance operations and changes. Then,
each in a fresh process (so peak RSS is the report's own):

- ``kpi_report`` build + render for the last month and for the whole year (ad hoc),
- baseline: the naive way — fetch the period's raw reachability findings, incidents and backups into
  Python and count there (what the report would cost without SQL aggregation).

    .venv/bin/python bench/kpi_report.py [--databases 200] [--hosts 200] [--days 365] [--keep]

Everything lives in bench/out/kpi-bench/ and is removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "kpi-bench"
PG_PORT = 55631
SYSTEMS = 20
END = "2026-12-01"
DB_CHECKS = (
    "database.reachable",
    "db.version",
    "db.uptime",
    "db.connections",
    "db.long_queries",
    "db.idle_in_tx",
    "db.locks",
    "db.xid_age",
    "db.cache_hit",
    "db.dead_tuples",
    "db.vacuum_age",
    "db.analyze_age",
    "db.bloat",
    "db.size_growth",
    "db.replication",
    "db.wal_archive",
    "db.invalid_indexes",
    "db.sequences",
    "db.backup_age",
    "db.extra",
)
HOST_CHECKS = (
    "host.reachable",
    "host.fs_used",
    "host.inodes",
    "host.load",
    "host.memory",
    "host.swap",
    "host.services",
    "host.clock",
    "host.uptime",
    "host.updates",
    "host.failed_units",
    "log.error",
    "log.fatal",
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--databases", type=int, default=200)
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--keep", action="store_true", help="keep the cluster and files")
    p.add_argument(
        "--child", help=argparse.SUPPRESS
    )  # internal: one measurement in a fresh process
    return p.parse_args()


# --------------------------------------------------------------------------- data


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def generation_sql(databases: int, hosts: int, days: int) -> list[tuple[str, str]]:
    """(what, SQL) steps; all rows made by PostgreSQL. Targets: db_NNN / host_NNN in sys_NN."""
    start = f"timestamptz '{END}' - interval '{days} days'"
    target = f"""(SELECT 'database' AS kind, 'db_' || lpad(i::text, 3, '0') AS id, 'sys_' ||
        lpad((i % {SYSTEMS})::text, 2, '0') AS sys
                 FROM generate_series(0, {databases} - 1) i
                 UNION ALL
                 SELECT 'host', 'host_' || lpad(i::text, 3, '0'), 'sys_' || lpad((i %
                     {SYSTEMS})::text, 2, '0')
                 FROM generate_series(0, {hosts} - 1) i)"""
    return [
        (
            "inspection runs",
            f"""
            INSERT INTO hisops.inspection_run (dag_id, run_id, logical_date, started_at,
                finished_at, state)
            SELECT 'daily_inspection', 'scheduled__' || d, d + interval '7 hours', d + interval
                '7 hours',
                   d + interval '7 hours' + (20 + random() * 50) * interval '1 minute', 'success'
            FROM generate_series({start}, timestamptz '{END}' - interval '1 day', interval '1 day')
                d""",
        ),
        (
            "findings",
            f"""
            INSERT INTO hisops.finding (inspection_run_id, check_id, target_kind, target_id,
                system_id, severity,
                                        value, message_zh, message_en, observed_at)
            SELECT r.id, c.check_id, t.kind, t.id, t.sys,
                   CASE WHEN random() < 0.97 THEN 'ok' WHEN random() < 0.8 THEN 'warn' ELSE
                       'critical' END,
                   random() * 100, '检查结果', 'check result',
                   r.logical_date + random() * interval '15 minutes'
            FROM hisops.inspection_run r
            CROSS JOIN {target} t
            JOIN LATERAL unnest(CASE t.kind WHEN 'database' THEN {_array(DB_CHECKS)}
                                            ELSE {_array(HOST_CHECKS)} END) AS c(check_id) ON
                                                true""",
        ),
        (
            "incidents",
            f"""
            INSERT INTO hisops.incident (check_id, target_id, system_id, severity, state, title_zh,
                title_en,
                                         opened_at, acknowledged_at, acknowledged_by, resolved_at)
            SELECT 'db.connections', 'db_' || lpad((g % {databases})::text, 3, '0'),
                   'sys_' || lpad((g % {databases} % {SYSTEMS})::text, 2, '0'),
                   CASE WHEN g % 5 = 0 THEN 'critical' ELSE 'warn' END, 'resolved', '事件',
                       'incident', o,
                   CASE WHEN g % 3 <> 0 THEN o + random() * interval '2 hours' END,
                   CASE WHEN g % 3 <> 0 THEN 'operator' || (g % 7) END, o + random() * interval
                       '30 hours'
            FROM generate_series(1, {days} * 20) g,
                 LATERAL (SELECT {start} + (g / 20.0) * interval '1 day' AS o) t""",
        ),
        (
            "backups",
            f"""
            INSERT INTO hisops.backup (database_id, system_id, kind, state, started_at, finished_at,
                size_bytes)
            SELECT 'db_' || lpad(i::text, 3, '0'), 'sys_' || lpad((i % {SYSTEMS})::text, 2, '0'),
                'database',
                   CASE WHEN random() < 0.98 THEN 'verified' ELSE 'failed' END,
                   d + interval '1 hour', d + interval '1 hour' + random() * interval '40 minutes',
                       1e9
            FROM generate_series({start}, timestamptz '{END}' - interval '1 day', interval '1 day')
                d,
                 generate_series(0, {databases} - 1) i""",
        ),
        (
            "restore drills",
            """
            INSERT INTO hisops.backup_verification (backup_id, started_at, finished_at, ok,
                restore_seconds)
            SELECT id, finished_at + interval '5 minutes', finished_at + interval '20 minutes',
                   state = 'verified', CASE WHEN state = 'verified' THEN 60 + random() * 900 END
            FROM hisops.backup""",
        ),
        (
            "maintenance operations",
            f"""
            INSERT INTO hisops.maintenance_operation (database_id, kind, state, started_at,
                finished_at)
            SELECT 'db_' || lpad((g % {databases})::text, 3, '0'), 'reindex', 'completed', s, s +
                interval '20 minutes'
            FROM generate_series(1, {days} * 5) g,
                 LATERAL (SELECT {start} + (g / 5.0) * interval '1 day' + interval '2 hours' AS s)
                     t""",
        ),
        (
            "changes",
            f"""
            INSERT INTO hisops.change_record (title, requested_by, approved_by, state, requested_at,
                started_at,
                                              finished_at, failed_at, kind, targets)
            SELECT '变更 ' || g, 'operator' || (g % 7), 'sysadmin' || (g % 2),
                   CASE WHEN g % 10 = 0 THEN 'rolled_back' WHEN g % 25 = 0 THEN 'cancelled' ELSE
                       'completed' END,
                   s - interval '1 day', s, s + interval '30 minutes',
                   CASE WHEN g % 10 = 0 THEN s + interval '10 minutes' END, 'sql',
                   ARRAY['db_' || lpad((g % {databases})::text, 3, '0')]
            FROM generate_series(1, {days} * 2) g,
                 LATERAL (SELECT {start} + (g / 2.0) * interval '1 day' + interval '2 hours' AS s)
                     t""",
        ),
        ("analyze", "ANALYZE"),
    ]


def write_inventory(databases: int, hosts: int) -> Path:
    import yaml

    systems = [
        {
            "id": f"sys_{s:02d}",
            "name": f"业务系统{s:02d}",
            "name_en": f"System {s:02d}",
            "databases": [],
            "hosts": [],
        }
        for s in range(SYSTEMS)
    ]
    for i in range(databases):
        systems[i % SYSTEMS]["databases"].append({"id": f"db_{i:03d}", "conn_id": f"db_{i:03d}"})
    for i in range(hosts):
        systems[i % SYSTEMS]["hosts"].append({"id": f"host_{i:03d}", "ssh_conn_id": f"ssh_{i:03d}"})
    inventory = {
        "version": 1,
        "hospital": "基准测试医院 (Benchmark Hospital)",
        "timezone": "Asia/Shanghai",
        "maintenance_window": {"start": "01:30", "end": "05:30"},
        "backup_storage": {"path": str(OUT / "backups")},
        "reports": {"path": str(OUT / "reports")},
        "systems": systems,
    }
    path = OUT / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True, sort_keys=False))
    return path


# --------------------------------------------------------------------------- measurements (child
# process)


def _period(which: str) -> Any:
    from hisops.kpi import period

    tz = "Asia/Shanghai"
    return (
        period.month(2026, 11, tz)
        if which == "month"
        else period.parse(None, "2025-12-01", "2026-11-30", tz, None)
    )  # type: ignore[arg-type]


def child(spec: str) -> dict[str, Any]:
    """One measurement: 'kpi:month', 'kpi:year', 'naive:month', 'naive:year' (JSON on stdout)."""
    from datetime import UTC, datetime

    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.loader import load_inventory

    args = json.loads(spec)
    inv, repo = load_inventory(args["inventory"]), CatalogRepository.from_url(args["url"])
    period = _period(args["period"])
    started = time.perf_counter()
    if args["how"] == "kpi":
        from hisops.kpi.figures import build_report
        from hisops.report.kpi import render_kpi_report

        report = build_report(repo, inv, period, datetime.now(UTC))
        built = time.perf_counter()
        html = render_kpi_report(report)
        result = {
            "availability_pct": report.availability.pct,
            "html_kb": len(html) // 1024,
            "build_s": built - started,
        }
    else:
        result = naive(repo, period)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    repo.dispose()
    return result


def naive(repo: Any, period: Any) -> dict[str, Any]:
    """Baseline: raw rows into Python, counted there (availability, MTTA, backup days)."""
    from collections import Counter

    from sqlalchemy import text

    with repo.engine.connect() as conn:
        p = {"s": period.start, "e": period.end}
        findings = conn.execute(
            text(
                "SELECT system_id, target_id, severity, observed_at FROM hisops.finding WHERE "
                "observed_at >= :s "
                "AND observed_at < :e AND check_id IN ('database.reachable', 'host.reachable', "
                "'http.status')"
            ),
            p,
        ).all()
        incidents = conn.execute(
            text("SELECT * FROM hisops.incident WHERE opened_at >= :s AND opened_at < :e"), p
        ).all()
        backups = conn.execute(
            text("SELECT * FROM hisops.backup WHERE started_at >= :s AND started_at < :e"), p
        ).all()
    up, total = Counter(), Counter()
    for f in findings:
        total[f.system_id] += 1
        up[f.system_id] += f.severity == "ok"
    acks = [
        (i.acknowledged_at - i.opened_at).total_seconds() for i in incidents if i.acknowledged_at
    ]
    days = {(b.database_id, b.started_at.date()) for b in backups if b.state == "verified"}
    return {
        "rows": len(findings) + len(incidents) + len(backups),
        "systems": len(total),
        "mtta": sum(acks) / max(1, len(acks)),
        "backup_days": len(days),
    }


def measure(how: str, which: str, url: str, inventory: Path) -> dict[str, Any]:
    spec = json.dumps({"how": how, "period": which, "url": url, "inventory": str(inventory)})
    proc = subprocess.run(
        [sys.executable, __file__, "--child", spec], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args.child), default=str))
        return 0
    sys.path.insert(0, str(REPO / "include"))
    from hisops.catalog.migrate import upgrade
    from hisops.devenv.pgcluster import PgCluster

    OUT.mkdir(parents=True, exist_ok=True)
    cluster = PgCluster(OUT / "pg", PG_PORT)
    cluster.start()
    try:
        cluster.create_database("kpi_catalog", drop_first=True)
        url = cluster.sqlalchemy_url("kpi_catalog")
        upgrade(url)
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        print("| step | rows | seconds |\n|---|---:|---:|")
        for what, sql in generation_sql(args.databases, args.hosts, args.days):
            t0 = time.perf_counter()
            with engine.begin() as conn:
                rows = conn.execute(text(sql)).rowcount
            print(
                f"| generate {what} | {max(rows, 0):,} | {time.perf_counter() - t0:.1f} |",
                flush=True,
            )
        with engine.connect() as conn:
            size = conn.execute(
                text("SELECT pg_size_pretty(pg_database_size('kpi_catalog'))")
            ).scalar_one()
        engine.dispose()
        print(f"\ncatalog size: {size}\n")
        inventory = write_inventory(args.databases, args.hosts)
        print("| measurement | seconds | peak RSS MB | notes |\n|---|---:|---:|---|")
        for how, which in (
            ("kpi", "month"),
            ("naive", "month"),
            ("kpi", "year"),
            ("naive", "year"),
        ):
            r = measure(how, which, url, inventory)
            notes = (
                f"build {r['build_s']:.2f} s, page {r['html_kb']} KB, availability "
                f"{r['availability_pct']}%"
                if how == "kpi"
                else f"{r['rows']:,} raw rows fetched"
            )
            label = (
                "kpi_report build+render"
                if how == "kpi"
                else "baseline: raw rows counted in Python"
            )
            print(
                f"| {label}, {which} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {notes} |",
                flush=True,
            )
    finally:
        if not args.keep:
            cluster.destroy()
            shutil.rmtree(OUT, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
