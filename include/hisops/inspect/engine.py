"""The inspection API (巡检引擎): one call per target, findings out, never
an exception for target trouble.

- `inspect_database`: one short read-only session, six statements (see `db_checks`).
- `inspect_host`: two commands through the runner — the host-check script (which also lists the
  log files) and the log scan (see `host_checks`, `log_scan`).
- `inspect_endpoint`: one GET plus, for https, one TLS handshake (see `http_checks`).
- `metrics_from`: (target id, metric, value) for the trend store.

Every target also gets a ``<kind>.reachable`` finding — ok when it answered — so the incident of
an outage resolves itself when the target is back (endpoints: ``http.status`` plays that role).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hisops.catalog.records import FindingRecord
from hisops.inspect import db_checks, host_checks, http_checks, log_scan
from hisops.inspect.findings import (
    Target,
    check_error,
    now_utc,
    reachability,
    unreachable,
)
from hisops.inventory.thresholds import Thresholds
from hisops.targets.errors import TargetUnreachable
from hisops.targets.runner import CommandRunner

STATEMENT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 5
HOST_SCRIPT_TIMEOUT_S = host_checks.SCRIPT_TIMEOUT_S

Offsets = dict[str, tuple[int | None, int]]


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return now_utc()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def inspect_database(
    system: Any,
    database: Any,
    dsn: str,
    thresholds: Thresholds,
    *,
    catalog_facts: dict[str, Any] | None = None,
    now: datetime | None = None,
    tz: str | None = None,
) -> list[FindingRecord]:
    """All database checks in one short session.

    ``catalog_facts`` (what only the catalog knows; every key optional):
    ``last_verified_backup_at`` (datetime | None — the key missing means "not looked up": no
    backup finding), ``previous_size_bytes`` / ``previous_size_at`` (growth since the last
    inspection), ``disk_free_bytes`` (free space where the database lives → days until full),
    ``previous_started_at`` (server start time seen last time → restart detection).
    """
    import psycopg2

    t = Target("database", database.id, system.id, thresholds, _aware(now), tz)
    started = time.monotonic()
    try:
        with db_checks_session(dsn, database.id) as conn:
            data, errors = db_checks.fetch_all(conn)
    except TargetUnreachable as exc:
        return [unreachable("database", database.id, system.id, exc.reason)]
    except psycopg2.Error as exc:  # the connection broke between statements
        return [
            unreachable(
                "database", database.id, system.id, f"connection lost: {str(exc).strip()[:200]}"
            )
        ]
    seconds = round(time.monotonic() - started, 3)
    version = (data.get("instance") or {}).get("version", "")
    ok = reachability(
        "database",
        database.id,
        system.id,
        True,
        f"可以连接（{seconds} 秒完成检查）",
        f"reachable (checks took {seconds} s)",
        seconds=seconds,
        version=version,
    )
    return [ok, *db_checks.evaluate(t, data, errors, catalog_facts)]


def db_checks_session(dsn: str, target: str) -> Any:
    from hisops.targets.postgres import pg_session

    return pg_session(
        dsn,
        target=target,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name="hisops-inspect",
    )


def resolve_glob(glob: str, base_dir: Path | None) -> str:
    """Relative log globs are relative to the repository (like every relative inventory path)."""
    if Path(glob).is_absolute():
        return os.path.normpath(glob)
    from hisops.inventory.models import REPO_ROOT

    return os.path.normpath((base_dir or REPO_ROOT) / glob)


def inspect_host(
    system: Any,
    host: Any,
    runner: CommandRunner,
    thresholds: Thresholds,
    *,
    log_offsets: log_scan.OffsetSource = None,
    fs_previous: Mapping[str, tuple[datetime, float]] | None = None,
    base_dir: Path | None = None,
    tz: str | None = None,
) -> tuple[list[FindingRecord], Offsets]:
    """Host and log checks; returns the findings and the new (inode, offset) of every log file read.

    ``log_offsets``: remembered (inode, offset) by file path, or a function of the reader (the
    machine the script ran on) returning them — the catalog lookup. ``fs_previous``: previous
    (observed_at, used bytes) per disk path — the catalog's ``fs_used_bytes:<path>`` metric — for
    days-until-full. Unreachable host → one critical ``host.reachable`` finding and no offsets
    (keep the old ones).
    """
    t = Target("host", host.id, system.id, thresholds, now_utc(), tz)
    globs = [resolve_glob(src.path, base_dir) for src in host.logs]
    try:
        out, records = _host_part(t, host, runner, globs, fs_previous)
    except TargetUnreachable as exc:
        return [unreachable("host", host.id, system.id, exc.reason)], {}
    if not host.logs:
        return out, {}
    try:
        logs, offsets = log_scan.inspect_logs(
            t, list(host.logs), globs, records, runner, log_offsets
        )
    except TargetUnreachable as exc:  # the session dropped between the two commands
        return [*out, check_error("log.scan", "host", host.id, system.id, exc.reason)], {}
    return out + logs, offsets


def _host_part(
    t: Target,
    host: Any,
    runner: CommandRunner,
    globs: list[str],
    fs_previous: Mapping[str, tuple[datetime, float]] | None,
) -> tuple[list[FindingRecord], dict[str, list[list[str]]]]:
    """Run the host-check script (with the log listing); findings and the parsed records."""
    script = host_checks.build_script(
        list(host.disk_paths), list(host.services), extra=log_scan.listing_snippet(globs)
    )
    sent = time.time()
    res = runner.run(script, timeout=HOST_SCRIPT_TIMEOUT_S)
    received = time.time()
    out = [
        reachability(
            "host",
            host.id,
            t.system_id,
            True,
            f"可以连接（脚本 {res.seconds:.2f} 秒）",
            f"reachable (script took {res.seconds:.2f} s)",
            seconds=round(res.seconds, 3),
        )
    ]
    if "done\t1" not in res.stdout:
        out.append(
            t.error("host.checks", f"script incomplete (rc {res.rc}): {res.stderr.strip()[-300:]}")
        )
    out += host_checks.evaluate(
        t,
        res.stdout,
        services=list(host.services),
        sent_at=sent,
        received_at=received,
        disk_paths=list(host.disk_paths),
        fs_previous=fs_previous,
    )
    return out, host_checks.parse_output(res.stdout).records


def inspect_endpoint(
    system: Any, endpoint: Any, thresholds: Thresholds, tz: str | None = None
) -> list[FindingRecord]:
    """HTTP(S) status, latency, expected text and TLS certificate of one endpoint."""
    t = Target("endpoint", endpoint.id, system.id, thresholds, now_utc(), tz)
    return http_checks.evaluate(t, endpoint)


def metrics_from(findings: list[FindingRecord]) -> list[tuple[str, str, float]]:
    """(target id, metric, value) for trend storage, from ``details['metrics']`` of each finding.

    Names: database_size_bytes, connections_pct, xid_age_pct, cache_hit_pct (databases);
    fs_used_pct:<path>, fs_used_bytes:<path>, inodes_free_pct:<path>, load_per_cpu,
    memory_available_pct, swap_free_pct (hosts); log_lines:<pattern> (log targets
    '<host>:<glob>'); http_latency_seconds, tls_days_left (endpoints).
    """
    out = []
    for f in findings:
        for name, value in (f.details.get("metrics") or {}).items():
            if value is not None:
                out.append((f.target_id, name, float(value)))
    return out
