"""Task bodies of the 自检 self-check DAG (the DAG file only wires them)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hisops.airflow import runtime
from hisops.selfcheck.probe import ProbeResult, probe_database, probe_host, summarize

log = logging.getLogger(__name__)
MAX_PARALLEL = 8


def _unresolved(kind: str, target_id: str, system_id: str, exc: Exception) -> ProbeResult:
    reason = f"connection not usable 连接配置不可用: {type(exc).__name__}: {str(exc)[:200]}"
    return ProbeResult(kind, target_id, system_id, False, reason, 0.0)


def _probe_db(system: Any, db: Any) -> ProbeResult:
    try:
        dsn = runtime.dsn_for(db)
    except Exception as exc:  # missing / malformed Airflow connection: a finding, not a crash
        return _unresolved("database", db.id, system.id, exc)
    return probe_database(db.id, system.id, dsn)


def _probe_host(system: Any, host: Any) -> ProbeResult:
    try:
        runner = runtime.runner_for(host)
    except Exception as exc:
        return _unresolved("host", host.id, system.id, exc)
    return probe_host(host.id, system.id, runner)


def _run_all(fn, pairs: list[tuple[Any, Any]]) -> list[dict]:
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        results = list(pool.map(lambda pair: fn(*pair), pairs))
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


def read_inventory() -> str:
    inv = runtime.inventory()
    log.info("清单 inventory: %s", inv.summary())
    return inv.summary()


def probe_databases() -> list[dict]:
    return _run_all(_probe_db, runtime.inventory().all_databases())


def probe_hosts() -> list[dict]:
    return _run_all(_probe_host, runtime.inventory().all_hosts())


def record(databases: list[dict], hosts: list[dict], run_id: str | None) -> dict:
    """Write one self-check row and an audit event to the catalog; returns the summary."""
    results = [*databases, *hosts]
    ok = all(r["reachable"] for r in results)
    repo = runtime.catalog()
    row_id = repo.record_selfcheck(results, ok, run_id)
    summary = summarize([ProbeResult(**r) for r in results])
    repo.add_audit_event(
        actor="hisops_selfcheck",
        action="selfcheck",
        target="inventory",
        result="success" if ok else "failure",
        details={"summary": summary},
        dag_id="hisops_selfcheck",
        run_id=run_id,
    )
    log.info("自检结果 self-check #%s: %s", row_id, summary)
    return {
        "selfcheck_id": row_id,
        "ok": ok,
        "summary": summary,
        "unreachable": [r["target_id"] for r in results if not r["reachable"]],
    }


def verdict(summary: dict) -> str:
    """Fail the run (red in the UI) when any target is unreachable, naming them."""
    if not summary["ok"]:
        raise RuntimeError(f"自检未通过 self-check failed — {summary['summary']}")
    return summary["summary"]
