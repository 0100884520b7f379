"""Reachability probes: one light query per database, one command per host."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from hisops.targets.errors import TargetUnreachable
from hisops.targets.postgres import pg_session
from hisops.targets.runner import CommandRunner


@dataclass(frozen=True)
class ProbeResult:
    target_kind: str  # database | host
    target_id: str
    system_id: str
    reachable: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def probe_database(target_id: str, system_id: str, dsn: str) -> ProbeResult:
    """Connect and read the server version; never raises for an unreachable server."""
    start = time.monotonic()
    try:
        with (
            pg_session(dsn, target=target_id, statement_timeout_ms=3000) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT current_setting('server_version'), current_database()")
            version, dbname = cur.fetchone()
        return ProbeResult(
            "database",
            target_id,
            system_id,
            True,
            f"PostgreSQL {version} ({dbname})",
            round(time.monotonic() - start, 3),
        )
    except TargetUnreachable as exc:
        return ProbeResult(
            "database", target_id, system_id, False, exc.reason, round(time.monotonic() - start, 3)
        )


def probe_host(target_id: str, system_id: str, runner: CommandRunner) -> ProbeResult:
    """Run `uname -sr; hostname` on the host; never raises for an unreachable host."""
    start = time.monotonic()
    try:
        res = runner.run("uname -sr && hostname", timeout=15)
    except TargetUnreachable as exc:
        return ProbeResult(
            "host", target_id, system_id, False, exc.reason, round(time.monotonic() - start, 3)
        )
    finally:
        runner.close()
    detail = (
        " ".join(res.stdout.split())
        if res.ok
        else f"command failed rc={res.rc}: {res.stderr.strip()[:200]}"
    )
    return ProbeResult(
        "host", target_id, system_id, res.ok, detail, round(time.monotonic() - start, 3)
    )


def summarize(results: list[ProbeResult]) -> str:
    """Chinese-first one-line summary, e.g. '可达 4/5 reachable; 不可达 unreachable: db1'."""
    ok = [r for r in results if r.reachable]
    bad = [r.target_id for r in results if not r.reachable]
    line = f"可达 {len(ok)}/{len(results)} reachable"
    return line + (f"; 不可达 unreachable: {', '.join(bad)}" if bad else "")
