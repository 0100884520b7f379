"""数据库维护 db_maintenance for one database: plan, gate, apply one
object at a time, record, check.

The gate (``hisops.safeguards``) must pass as a whole before the first step: inside the maintenance
window, a verified backup younger than ``tuning.backup_max_age_hours`` whose files exist, and an
approval (a 系统管理员 or higher who is not the requester; a scheduled run may auto-approve only
pre-approved step kinds). A refused gate applies nothing and is audited with every verdict.

Steps run in an autocommit session (CONCURRENTLY cannot run in a transaction) with a short
``lock_timeout``: a step that cannot get its lock gives up, waits (back-off) and retries, and after
``lock_retries`` is recorded as skipped — it never sits in the lock queue where it would block
readers. No step starts after the window's end; the rest are recorded as skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hisops.safeguards.verdict import Verdict
from hisops.tune.plan import Plan, Step, assert_safe, make_plan, quoted

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.runinfo import RunInfo
    from hisops.safeguards.window import WindowClock

log = logging.getLogger(__name__)

ACTION = "db_maintenance"
BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


class MaintenanceRefused(Exception):
    """The gate refused: nothing was applied (reason in Chinese and English)."""

    def __init__(self, verdicts: list[Verdict]) -> None:
        self.verdicts = verdicts
        bad = [v for v in verdicts if not v.ok]
        super().__init__("; ".join(v.reason for v in bad))


@dataclass
class StepOutcome:
    kind: str
    object: str
    sql: str
    state: str  # applied | skipped | failed | planned
    operation_id: int | None = None
    attempts: int = 0
    seconds: float = 0.0
    reason: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    database_id: str
    dry_run: bool
    started_at: str
    gate: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)
    post_checks: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.state] = out.get(s.state, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts()}


# --------------------------------------------------------------------------- plan


def plan_database(
    repo: CatalogRepository,
    inventory: Inventory,
    database_id: str,
    dsn: str,
    run: RunInfo,
    kinds: list[str] | None = None,
) -> Plan:
    """The plan (read-only session); refuses a database not in the inventory (KeyError)."""
    from hisops.targets.postgres import pg_session

    inventory.locate_database(database_id)
    with pg_session(
        dsn,
        target=database_id,
        statement_timeout_ms=120_000,
        read_only=True,
        application_name="hisops-maintenance-plan",
    ) as conn:
        plan = make_plan(conn, repo, database_id, inventory.tuning, kinds)
    repo.add_audit_event(
        run.actor,
        f"{ACTION}_plan",
        database_id,
        "success",
        {"steps": [s.as_dict() for s in plan.steps], "notes": plan.notes},
        **run.audit_fields(),
    )
    log.info("维护计划 plan\n%s", plan.text())
    return plan


def plan_from_dict(data: dict[str, Any]) -> Plan:
    return Plan(
        data["database_id"], [Step(**s) for s in data.get("steps", [])], list(data.get("notes", []))
    )


# --------------------------------------------------------------------------- gate


def gate(
    repo: CatalogRepository,
    inventory: Inventory,
    database_id: str,
    approval: Verdict,
    now: datetime | None = None,
) -> list[Verdict]:
    from hisops.safeguards.backup import check_fresh_backup
    from hisops.safeguards.window import check_window

    tz = ZoneInfo(inventory.timezone)
    max_age = timedelta(hours=inventory.tuning.backup_max_age_hours)
    return [
        check_window(inventory.maintenance_window, tz, now),
        check_fresh_backup(repo, inventory, database_id, max_age=max_age, now=now),
        approval,
    ]


# --------------------------------------------------------------------------- apply


def _execute(
    conn: Any, step: Step, lock_timeout_ms: int, retries: int, sleep: Callable[[float], None]
) -> tuple[str, int, str]:
    """(state, attempts, reason): applied, or skipped after lock timeouts, or failed."""
    import psycopg2

    sql = assert_safe(step.sql)
    attempt = 0
    while True:
        attempt += 1
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
                cur.execute(sql)
            return "applied", attempt, ""
        except psycopg2.Error as exc:
            left = _cleanup_after_failure(conn, step, lock_timeout_ms)
            if left:
                return (
                    "skipped" if exc.pgcode == LOCK_NOT_AVAILABLE else "failed",
                    attempt,
                    (
                        f"{str(exc).strip().splitlines()[0][:200]}; 无效残留索引留待下次删除 "
                        f"invalid leftover {', '.join(left)} is dropped by the next run"
                    ),
                )
            if exc.pgcode != LOCK_NOT_AVAILABLE:
                return "failed", attempt, str(exc).strip().splitlines()[0][:300]
            if attempt > retries:
                return (
                    "skipped",
                    attempt,
                    (
                        f"锁等待超时，重试 {retries} 次后放弃 lock not available within "
                        f"{lock_timeout_ms} ms after {retries} retries"
                    ),
                )
            sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])


def _cleanup_after_failure(conn: Any, step: Step, lock_timeout_ms: int) -> list[str]:
    """A failed CREATE/REINDEX CONCURRENTLY leaves an invalid index: try to drop it now, with the
    same short lock_timeout (DROP INDEX CONCURRENTLY also waits for old transactions). What cannot
    be dropped now is returned; the next run's plan drops it (``drop_invalid``)."""
    import psycopg2

    if step.kind not in ("create_index", "reindex"):
        return []
    schema, name = step.object.split(".", 1)
    pattern = name if step.kind == "create_index" else name + "\\_cc%"
    with conn.cursor() as cur:
        cur.execute(
            """SELECT n.nspname || '.' || c.relname FROM pg_index x
                JOIN pg_class c ON c.oid = x.indexrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE NOT x.indisvalid AND n.nspname = %s AND c.relname LIKE %s""",
            (schema, pattern),
        )
        leftovers = [r[0] for r in cur.fetchall()]
    left = []
    for index in leftovers:
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
                cur.execute(assert_safe(f"DROP INDEX CONCURRENTLY IF EXISTS {quoted(index)}"))
            log.warning("dropped the invalid leftover %s of a failed step", index)
        except psycopg2.Error as exc:
            log.warning(
                "invalid leftover %s stays for the next run: %s", index, str(exc).strip()[:200]
            )
            left.append(index)
    return left


def _skip(
    repo: CatalogRepository,
    database_id: str,
    step: Step,
    run: RunInfo,
    reason: str,
    state: str = "skipped",
    backup_id: int | None = None,
) -> StepOutcome:
    op = repo.start_maintenance(
        database_id,
        step.kind,
        step.object,
        before={"sql": step.sql},
        backup_id=backup_id,
        dag_run_id=run.run_id,
        proposal_id=step.proposal_id,
        state=state,
    )
    repo.finish_maintenance(op, state, error=reason or None)
    return StepOutcome(step.kind, step.object, step.sql, state, op, reason=reason)


def _apply_step(
    repo: CatalogRepository,
    conn: Any,
    database_id: str,
    step: Step,
    run: RunInfo,
    inventory: Inventory,
    backup_id: int | None,
    sleep: Callable[[float], None],
) -> StepOutcome:
    from hisops.tune.measure import snapshot

    cfg = inventory.tuning
    before = snapshot(conn, step.object, step.table)
    op = repo.start_maintenance(
        database_id,
        step.kind,
        step.object,
        before={**before, "sql": step.sql},
        backup_id=backup_id,
        dag_run_id=run.run_id,
        proposal_id=step.proposal_id,
    )
    started = time.monotonic()
    state, attempts, reason = _execute(conn, step, cfg.lock_timeout_ms, cfg.lock_retries, sleep)
    seconds = round(time.monotonic() - started, 3)
    after = snapshot(conn, step.object, step.table)
    repo.finish_maintenance(
        op, state, after={**after, "attempts": attempts, "seconds": seconds}, error=reason or None
    )
    if state == "applied" and step.proposal_id is not None:
        repo.move_proposal(step.proposal_id, ("approved",), "applied")
    repo.add_audit_event(
        run.actor,
        f"{ACTION}_step",
        f"{database_id}:{step.object}",
        "success" if state == "applied" else "failure",
        {
            "kind": step.kind,
            "sql": step.sql,
            "state": state,
            "attempts": attempts,
            "reason": reason,
            "operation_id": op,
        },
        **run.audit_fields(),
    )
    log.info(
        "step %s %s: %s after %d attempt(s), %.1fs %s",
        step.kind,
        step.object,
        state,
        attempts,
        seconds,
        reason,
    )
    return StepOutcome(
        step.kind, step.object, step.sql, state, op, attempts, seconds, reason, before, after
    )


def apply_plan(
    repo: CatalogRepository,
    inventory: Inventory,
    database_id: str,
    dsn: str,
    plan: Plan,
    run: RunInfo,
    *,
    approval: Verdict,
    dry_run: bool,
    now: datetime | None = None,
    clock: WindowClock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Gate, then apply the plan's steps one at a time; MaintenanceRefused when the gate says no."""
    from hisops.safeguards.window import clock_for
    from hisops.targets.postgres import pg_session

    inventory.locate_database(database_id)
    started = time.monotonic()
    result = RunResult(database_id, dry_run, (now or datetime.now(UTC)).isoformat())
    if dry_run:
        result.steps = [
            _skip(repo, database_id, s, run, "演练：未执行 dry run: not applied", "planned")
            for s in plan.steps
        ]
        repo.add_audit_event(
            run.actor,
            f"{ACTION}_dry_run",
            database_id,
            "success",
            {"steps": len(plan.steps)},
            **run.audit_fields(),
        )
        return result
    verdicts = gate(repo, inventory, database_id, approval, now)
    result.gate = [v.as_dict() for v in verdicts]
    if not all(v.ok for v in verdicts):
        repo.add_audit_event(
            run.actor,
            ACTION,
            database_id,
            "refused",
            {"gate": result.gate, "steps": [s.as_dict() for s in plan.steps]},
            **run.audit_fields(),
        )
        raise MaintenanceRefused(verdicts)
    clock = clock or clock_for(verdicts[0])
    backup_id = verdicts[1].details.get("backup_id")
    repo.add_audit_event(
        run.actor,
        ACTION,
        database_id,
        "success",
        {"gate": result.gate, "steps": len(plan.steps), "phase": "start"},
        **run.audit_fields(),
    )
    with pg_session(
        dsn,
        target=database_id,
        statement_timeout_ms=inventory.tuning.statement_timeout_s * 1000,
        read_only=False,
        application_name="hisops-maintenance",
    ) as conn:
        for step in plan.steps:
            if not clock.may_start():
                result.steps.append(
                    _skip(
                        repo,
                        database_id,
                        step,
                        run,
                        "维护窗口已结束，未开始 the maintenance window closed before this step",
                        backup_id=backup_id,
                    )
                )
                continue
            result.steps.append(
                _apply_step(repo, conn, database_id, step, run, inventory, backup_id, sleep)
            )
        result.post_checks = post_checks(conn, result)
    result.post_checks["inspection"] = inspection_checks(repo, inventory, database_id, dsn)
    result.seconds = round(time.monotonic() - started, 3)
    repo.add_audit_event(
        run.actor,
        ACTION,
        database_id,
        "success",
        {"phase": "finish", "counts": result.counts(), "post_checks": result.post_checks},
        **run.audit_fields(),
    )
    return result


# --------------------------------------------------------------------------- post-checks


def post_checks(conn: Any, result: RunResult) -> dict[str, Any]:
    """No invalid index left; amcheck on the indexes rebuilt or created by this run."""
    import psycopg2

    with conn.cursor() as cur:
        cur.execute("SET lock_timeout = 0")
        cur.execute("""SELECT n.nspname || '.' || c.relname FROM pg_index x
                        JOIN pg_class c ON c.oid = x.indexrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT x.indisvalid""")
        invalid = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")
        has_amcheck = cur.fetchone() is not None
        checked, failed = [], {}
        for s in result.steps:
            if s.state == "applied" and s.kind in ("reindex", "create_index") and has_amcheck:
                try:
                    cur.execute("SELECT bt_index_check(%s::regclass)", (quoted(s.object),))
                    checked.append(s.object)
                except psycopg2.Error as exc:
                    failed[s.object] = str(exc).strip().splitlines()[0][:200]
    return {
        "invalid_indexes": invalid,
        "amcheck_checked": checked,
        "amcheck_failed": failed,
        "amcheck_available": has_amcheck,
        "ok": not invalid and not failed,
    }


def inspection_checks(
    repo: CatalogRepository, inventory: Inventory, database_id: str, dsn: str
) -> dict[str, Any]:
    """The daily inspection's database checks for this database, run now (problems listed)."""
    from hisops.inspect.engine import inspect_database
    from hisops.inspect.run import catalog_facts

    system, db = inventory.locate_database(database_id)
    findings = inspect_database(
        system,
        db,
        dsn,
        inventory.thresholds_for(db),
        catalog_facts=catalog_facts(repo, database_id),
    )
    problems = [
        {
            "check": f.check_id,
            "severity": f.severity,
            "message_zh": f.message_zh,
            "message_en": f.message_en,
        }
        for f in findings
        if f.severity != "ok"
    ]
    return {"checks": len(findings), "problems": problems}


# --------------------------------------------------------------------------- approval


def resolve_dry_run(choice: str, run: RunInfo) -> bool:
    """'auto': scheduled runs apply, manual runs only show what they would do."""
    return {"yes": True, "no": False}.get(choice, not run.is_scheduled)


def approval_needed(plan: Plan, run: RunInfo, inventory: Inventory, dry_run: bool) -> Verdict:
    """ok = no person needs to approve (dry run, nothing to do, or
    scheduled + all kinds pre-approved)."""
    from hisops.safeguards.approval import auto_approval

    if dry_run:
        return Verdict(
            "approval", True, "演练，无需审批", "dry run: no approval needed", {"auto": True}
        )
    if not plan.steps:
        return Verdict(
            "approval",
            True,
            "无步骤，无需审批",
            "nothing to do: no approval needed",
            {"auto": True},
        )
    auto = auto_approval([s.kind for s in plan.steps], inventory.tuning.pre_approved)
    if run.is_scheduled and auto.ok:
        return Verdict(
            "approval", True, auto.reason_zh, auto.reason_en, {**auto.details, "auto": True}
        )
    return Verdict(
        "approval",
        False,
        "需要系统管理员或以上（非发起人）审批",
        "needs approval by a 系统管理员 or higher who is not the requester",
        {"auto": False},
    )


def approval_verdict(
    response: dict[str, Any], run: RunInfo, roles_of: Callable[[str], set[str]]
) -> Verdict:
    """The approval safeguard from the human-in-the-loop response (or the automatic decision)."""
    from hisops.safeguards.approval import ApprovalRequest, check_approval

    if response.get("auto"):
        return Verdict(
            "approval",
            True,
            response.get("reason_zh", "自动批准"),
            response.get("reason_en", "auto-approved"),
            {"auto": True},
        )
    approver = response.get("responder")
    roles = frozenset(roles_of(approver)) if approver else frozenset()
    return check_approval(
        ApprovalRequest(run.triggering_user, approver, roles, bool(response.get("approved")))
    )


# --------------------------------------------------------------------------- result, report


def save_result(result: RunResult, inventory: Inventory, run: RunInfo) -> str:
    import json
    import os
    import re

    folder = inventory.resolve_path(inventory.reports.path) / "db_maintenance"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = (
        folder
        / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', run.run_id).strip('-.')}-{result.database_id}.json"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(result.as_dict(), fh, ensure_ascii=False, default=str)
    return str(path)


def publish(path: str, inventory: Inventory, run: RunInfo, *, channels: Any = ()) -> dict[str, Any]:
    """Render the 数据库维护报告, save it (0600) and mail it to the supervisors."""
    import json
    from pathlib import Path

    from hisops.notify import send
    from hisops.report.render import summary_text
    from hisops.report.tune_render import render_maintenance, save_html

    result = json.loads(Path(path).read_text(encoding="utf-8"))
    tz = ZoneInfo(inventory.timezone)
    html = render_maintenance(result, hospital=inventory.hospital, tz=tz)
    day = datetime.now(UTC).astimezone(tz).date()
    out = save_html(
        html,
        inventory.resolve_path(inventory.reports.path),
        day,
        f"maintenance-{run.run_id}-{result['database_id']}",
    )
    counts = result["counts"]
    subject = (
        f"数据库维护 Database maintenance {day} · {result['database_id']} · "
        f"{'演练 dry run' if result['dry_run'] else '执行 applied'} · "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    text = summary_text([subject], out)
    sent = send(list(channels), subject, text, severity="warn", html=html) if channels else None
    return {"path": str(out), "subject": subject, "sent": [] if sent is None else sent.sent}
