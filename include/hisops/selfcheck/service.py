"""The 自检 self-check as a service: probe every target, record the result, give the verdict.

The service records for itself (one ``selfcheck_run`` row and an audit event); the Airflow
adapter ``hisops.airflow.selfcheck_tasks`` only passes how targets are reached and the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from hisops.selfcheck.probe import ProbeResult, probe_database, probe_host, summarize

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Database, Host, Inventory, System
    from hisops.runinfo import RunInfo
    from hisops.targets.runner import CommandRunner

log = logging.getLogger(__name__)

MAX_PARALLEL = 8
ACTION = "selfcheck"


def _unresolved(kind: str, target_id: str, system_id: str, exc: Exception) -> ProbeResult:
    reason = f"connection not usable 连接配置不可用: {type(exc).__name__}: {str(exc)[:200]}"
    return ProbeResult(kind, target_id, system_id, False, reason, 0.0)


def probe_db(system: System, db: Database, dsn_for: Callable[[Database], str]) -> ProbeResult:
    """One database; a missing or malformed connection is an unreachable result, not a crash."""
    try:
        dsn = dsn_for(db)
    except Exception as exc:  # missing / malformed Airflow connection: a finding, not a crash
        return _unresolved("database", db.id, system.id, exc)
    return probe_database(db.id, system.id, dsn)


def probe_one_host(
    system: System, host: Host, runner_for: Callable[[Host], CommandRunner]
) -> ProbeResult:
    """One host; a runner that cannot be built (bad connection, refused local host) is a result."""
    try:
        runner = runner_for(host)
    except Exception as exc:
        return _unresolved("host", host.id, system.id, exc)
    return probe_host(host.id, system.id, runner)


def _run_all(probe: Callable[..., ProbeResult], pairs: Sequence[tuple[Any, Any]]) -> list[dict]:
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        results = list(pool.map(lambda pair: probe(*pair), pairs))
    for i, r in enumerate(results, 1):
        state = "可达 reachable" if r.reachable else "不可达 UNREACHABLE"
        log.info(
            "[%d/%d] %s %s: %s — %s (%.2fs)",
            i,
            len(results),
            r.target_kind,
            r.target_id,
            state,
            r.detail,
            r.seconds,
        )
    return [r.as_dict() for r in results]


def read_inventory(inventory: Inventory) -> str:
    log.info("清单 inventory: %s", inventory.summary())
    return inventory.summary()


def probe_databases(inventory: Inventory, dsn_for: Callable[[Database], str]) -> list[dict]:
    """Every database of the inventory, 8 at a time, as JSON-able results."""
    return _run_all(lambda s, d: probe_db(s, d, dsn_for), inventory.all_databases())


def probe_hosts(inventory: Inventory, runner_for: Callable[[Host], CommandRunner]) -> list[dict]:
    """Every host of the inventory, 8 at a time, as JSON-able results."""
    return _run_all(lambda s, h: probe_one_host(s, h, runner_for), inventory.all_hosts())


def record(
    repo: CatalogRepository, databases: Sequence[dict], hosts: Sequence[dict], run: RunInfo
) -> dict[str, Any]:
    """Write one self-check row and an audit event to the catalog; returns the summary."""
    results = [*databases, *hosts]
    ok = all(r["reachable"] for r in results)
    row_id = repo.record_selfcheck(results, ok, run.run_id)
    summary = summarize([ProbeResult(**r) for r in results])
    repo.add_audit_event(
        actor=run.dag_id,
        action=ACTION,
        target="inventory",
        result="success" if ok else "failure",
        details={"summary": summary},
        **run.audit_fields(),
    )
    log.info("自检结果 self-check #%s: %s", row_id, summary)
    return {
        "selfcheck_id": row_id,
        "ok": ok,
        "summary": summary,
        "unreachable": [r["target_id"] for r in results if not r["reachable"]],
    }


def verdict(summary: dict[str, Any]) -> str:
    """Fail the run (red in the UI) when any target is unreachable, naming them."""
    if not summary["ok"]:
        raise RuntimeError(f"自检未通过 self-check failed — {summary['summary']}")
    return summary["summary"]
