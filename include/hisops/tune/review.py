"""性能优化评估 performance_review for one database: read-only, records to the catalog.

One read-only session (statement_timeout, lock_timeout) reads pg_stat_statements, proves index
advice with hypopg and reads index/table health; then the catalog gets the statement snapshot,
the proposals, bloat samples (trends) and an audit event. The result is a plain, JSON-able dict
that the report renders. An unreachable database is a finding in the result, not a crash.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hisops.tune import advisor, health, proposals, statements

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory, Tuning
    from hisops.runinfo import RunInfo

log = logging.getLogger(__name__)

ACTION = "performance_review"
STATEMENT_TIMEOUT_MS = 30_000
TREND_DAYS = 60


@dataclass
class ReviewResult:
    database_id: str
    system_id: str
    reviewed_at: str
    ok: bool = True
    error: str | None = None
    server_ms: float = 0.0
    findings: list[dict[str, Any]] = field(default_factory=list)
    top_total: list[dict[str, Any]] = field(default_factory=list)
    top_mean: list[dict[str, Any]] = field(default_factory=list)
    top_calls: list[dict[str, Any]] = field(default_factory=list)
    regressions: list[dict[str, Any]] = field(default_factory=list)
    advice: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    trends: list[dict[str, Any]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    measured: list[int] = field(default_factory=list)
    period_hours: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finding(check: str, severity: str, zh: str, en: str, **details: Any) -> dict[str, Any]:
    return {
        "check": check,
        "severity": severity,
        "message_zh": zh,
        "message_en": en,
        "details": details,
    }


def _advice_dict(a: advisor.Advice) -> dict[str, Any]:
    return {
        "available": a.available,
        "reason_zh": a.reason_zh,
        "reason_en": a.reason_en,
        "examined": a.examined,
        "notes": a.notes,
        "suggestions": [
            {**s.as_details(), "name": s.name, "definition": s.definition} for s in a.suggestions
        ],
    }


def _read(conn: Any, database_id: str, previous: Any, cfg: Tuning) -> tuple:
    read = statements.read_statements(conn, database_id, previous)
    if read.available:
        advice = advisor.advise(
            conn,
            database_id,
            read,
            slow_mean_ms=cfg.slow_mean_ms,
            slow_min_calls=cfg.slow_min_calls,
            min_drop_pct=cfg.advice_min_drop_pct,
        )
    else:
        advice = advisor.Advice(
            False,
            "未启用 pg_stat_statements，无慢查询可分析",
            "pg_stat_statements is not available, so there are no slow queries to advise on",
        )
    return read, advice, health.read_and_assess(conn, cfg)


def review_database(
    repo: CatalogRepository,
    inventory: Inventory,
    database_id: str,
    dsn: str,
    run: RunInfo,
    *,
    now: datetime | None = None,
) -> ReviewResult:
    """Review one inventory database; KeyError when it is not in the inventory."""
    from hisops.targets.errors import TargetUnreachable
    from hisops.targets.postgres import pg_session

    system, _db = inventory.locate_database(database_id)
    cfg = inventory.tuning
    now = now or datetime.now(UTC)
    result = ReviewResult(database_id, system.id, now.isoformat())
    previous = repo.latest_statement_snapshot(database_id)
    try:
        with pg_session(
            dsn,
            target=database_id,
            statement_timeout_ms=STATEMENT_TIMEOUT_MS,
            read_only=True,
            application_name="hisops-performance-review",
        ) as conn:
            started = time.perf_counter()
            read, advice, h = _read(conn, database_id, previous, cfg)
            result.server_ms = round((time.perf_counter() - started) * 1000, 1)
    except TargetUnreachable as exc:
        result.ok, result.error = False, str(exc)
        result.findings.append(
            _finding(
                "tune.unreachable",
                "critical",
                f"无法连接 {database_id}：{exc}",
                f"cannot reach {database_id}: {exc}",
            )
        )
        repo.add_audit_event(
            run.actor, ACTION, database_id, "failure", {"error": str(exc)}, **run.audit_fields()
        )
        return result
    _fill(result, read, advice, h)
    _record(repo, result, read, advice, h, run, now)
    return result


def _fill(
    result: ReviewResult, read: statements.StatementsRead, advice: advisor.Advice, h: health.Health
) -> None:
    if not read.available:
        result.findings.append(
            _finding(
                "tune.pg_stat_statements",
                "warn",
                read.missing_zh or "",
                read.missing_en or "",
                setting=statements.SETTING,
            )
        )
    result.period_hours = round(read.period_s / 3600, 2)
    result.top_total = [s.as_dict() for s in read.top("total")]
    result.top_mean = [s.as_dict() for s in read.top("mean")]
    result.top_calls = [s.as_dict() for s in read.top("calls")]
    result.regressions = [s.as_dict() for s in read.regressions()]
    result.advice = _advice_dict(advice)
    if not advice.available:
        result.findings.append(_finding("tune.hypopg", "warn", advice.reason_zh, advice.reason_en))
    result.health = h.summary()
    if h.invalid:
        names = ", ".join(i.index for i in h.invalid)
        result.findings.append(
            _finding(
                "tune.invalid_indexes", "warn", f"无效索引：{names}", f"invalid indexes: {names}"
            )
        )


def _trends(
    repo: CatalogRepository, database_id: str, h: health.Health, now: datetime
) -> list[dict]:
    from hisops.catalog.records import MetricSample

    samples, trends = [], []
    objects = [("table_bloat_bytes", t.table, t.bloat_bytes) for t in h.tables if t.bloat_bytes] + [
        ("index_bloat_bytes", i.index, i.bloat_bytes) for i in h.indexes if i.bloat_bytes
    ]
    since = now - timedelta(days=TREND_DAYS)
    for metric, obj, value in sorted(objects, key=lambda o: -o[2])[:20]:
        name = f"tune.{metric}:{obj}"
        series = repo.metric_series(database_id, name, since)
        trends.append(
            {
                "metric": metric,
                "object": obj,
                "now": value,
                "previous": series[-1].value if series else None,
                "first": series[0].value if series else None,
                "samples": len(series),
            }
        )
        samples.append(MetricSample(database_id, name, float(value), now))
    repo.add_metric_samples(samples)
    return trends


def _record(
    repo: CatalogRepository,
    result: ReviewResult,
    read: statements.StatementsRead,
    advice: advisor.Advice,
    h: health.Health,
    run: RunInfo,
    now: datetime,
) -> None:
    db = result.database_id
    if read.available:
        repo.add_statement_snapshot(
            db,
            [s.as_dict() for s in read.statements],
            stats_reset=read.stats_reset,
            dag_run_id=run.run_id,
        )
        result.measured = proposals.measure_applied(repo, db, read)
    result.proposals = proposals.record_suggestions(repo, db, advice.suggestions, h)
    result.trends = _trends(repo, db, h, now)
    repo.add_audit_event(
        run.actor,
        ACTION,
        db,
        "success",
        {
            "suggestions": len(advice.suggestions),
            "proposals": [p["id"] for p in result.proposals],
            "server_ms": result.server_ms,
            "findings": [f["check"] for f in result.findings],
        },
        **run.audit_fields(),
    )
    log.info(
        "performance_review %s: %d statements, %d suggestions, %d proposals, server %.0f ms",
        db,
        len(read.statements),
        len(advice.suggestions),
        len(result.proposals),
        result.server_ms,
    )


def publish(
    results: list[dict[str, Any]],
    inventory: Inventory,
    run: RunInfo,
    *,
    channels: Any = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Render the 性能优化评估报告, save it (0600) under reports.path/<day>/ and mail it."""
    from zoneinfo import ZoneInfo

    from hisops.notify import send
    from hisops.report.tune_render import render_review, review_subject, review_text, save_html

    now = now or datetime.now(UTC)
    tz = ZoneInfo(inventory.timezone)
    day = now.astimezone(tz).date()
    html = render_review(
        results, hospital=inventory.hospital, tz=tz, run_id=run.run_id, generated_at=now
    )
    path = save_html(
        html, inventory.resolve_path(inventory.reports.path), day, f"performance-{run.run_id}"
    )
    subject = review_subject(results, inventory.hospital, day.isoformat())
    bad = any(not r["ok"] or r["findings"] for r in results)
    sent = (
        send(
            list(channels),
            subject,
            review_text(results, subject, str(path)),
            severity="warn",
            html=html,
        )
        if channels
        else None
    )
    log.info("性能优化评估报告 report %s (%s findings)", path, "with" if bad else "no")
    return {"path": str(path), "subject": subject, "sent": [] if sent is None else sent.sent}


def select_databases(inventory: Inventory, requested: list[str] | None) -> list[str]:
    """The inventory databases to review (empty/None = all); ValueError naming unknown ids."""
    known = [d.id for _, d in inventory.all_databases()]
    wanted = list(requested or known)
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise ValueError(
            f"不在清单中 not in the inventory: {', '.join(unknown)} (known: {', '.join(known)})"
        )
    return wanted


def save_result(result: ReviewResult, inventory: Inventory, run: RunInfo) -> str:
    """Keep the (large) result as JSON beside the reports (0600) so tasks pass only its path."""
    import json
    import os
    import re

    folder = inventory.resolve_path(inventory.reports.path) / "performance_review"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", run.run_id).strip("-.")
    path = folder / f"{safe}-{result.database_id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(result.as_dict(), fh, ensure_ascii=False, default=str)
    return str(path)


def load_results(paths: list[str]) -> list[dict[str, Any]]:
    import json
    from pathlib import Path

    return [
        json.loads(Path(p).read_text(encoding="utf-8")) for p in paths if p and Path(p).is_file()
    ]
