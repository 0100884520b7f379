"""`security_audit`: every database and host of the inventory → findings, incidents, report.

Records through the repository it is given (findings of one run, incidents per check and target,
baselines, audit events) and writes the Chinese report (0600). An unreachable target is a
``check_error`` finding, never a crashed run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.security import baseline, db_checks, host_checks
from hisops.security.findings import finding

if TYPE_CHECKING:
    from hisops.catalog.records import FindingRecord, TargetKind
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Database, Host, Inventory
    from hisops.runinfo import RunInfo
    from hisops.targets.runner import CommandRunner

STATEMENT_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class SecurityAuditResult:
    run_id: int
    findings: int
    problems: int
    opened: int
    report_path: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _drift_finding(
    check: str,
    kind: str,
    target: str,
    what_zh: str,
    what_en: str,
    drift: baseline.Drift | None,
    system_id: str | None,
    tz: str,
) -> FindingRecord:
    from hisops.report.timefmt import fmt

    if drift is None or not drift.any:
        note = (
            "首次建立基线 first baseline"
            if drift is None
            else f"与基线一致 matches baseline ({drift.accepted_by})"
        )
        return finding(
            check,
            kind,
            target,
            "ok",
            f"{what_zh}：{note}",
            f"{what_en}: {note}",  # type: ignore[arg-type]
            system_id=system_id,
        )
    since = fmt(drift.since, tz)
    return finding(
        check,
        kind,
        target,
        "warn",  # type: ignore[arg-type]
        f"{what_zh}与基线不同（自 {since} 起）：{drift.text()}",
        f"{what_en} differ from the baseline (since {since}): {drift.text()}",
        system_id=system_id,
        drift=drift.as_dict(),
        drift_since=since,
        baseline_accepted_by=drift.accepted_by,
        suggestion_zh="核实变更是否经审批；确认后由管理员执行 hisops security accept-drift",
        suggestion_en="check the change was approved; then `hisops security accept-drift`",
    )


def _unreachable(kind: TargetKind, target_id: str, system_id: str, exc: Exception) -> FindingRecord:
    """The target did not answer: one check_error ``security.reachable`` finding."""
    return finding(
        "security.reachable",
        kind,
        target_id,
        "check_error",
        f"无法连接，安全检查未执行：{exc}",
        f"unreachable, security checks not run: {exc}",
        system_id=system_id,
    )


def audit_database(
    repo: CatalogRepository,
    db: Database,
    system_id: str,
    dsn: str,
    actor: str,
    tz: str = "Asia/Shanghai",
) -> list[FindingRecord]:
    from hisops.targets.errors import TargetUnreachable
    from hisops.targets.postgres import pg_session

    try:
        with pg_session(
            dsn,
            target=db.id,
            statement_timeout_ms=STATEMENT_TIMEOUT_MS,
            application_name="hisops-security-audit",
        ) as conn:
            snap = db_checks.collect(conn, db.id)
    except TargetUnreachable as exc:
        return [_unreachable("database", db.id, system_id, exc)]
    roles = {name: dict(attrs) for name, attrs in snap.roles.items()}
    out = [
        *db_checks.evaluate(snap),
        _drift_finding(
            "security.role_attributes",
            "database",
            db.id,
            "角色及属性",
            "roles and attributes",
            baseline.compare(repo, db.id, "roles", roles, actor),
            system_id,
            tz,
        ),
        _drift_finding(
            "security.grants",
            "database",
            db.id,
            "表权限授予",
            "table grants",
            baseline.compare(repo, db.id, "grants", snap.grants, actor),
            system_id,
            tz,
        ),
    ]
    return [_with_system(f, system_id) for f in out]


def _with_system(f: FindingRecord, system_id: str) -> FindingRecord:
    from dataclasses import replace

    return f if f.system_id else replace(f, system_id=system_id)


def audit_host(
    repo: CatalogRepository,
    host: Host,
    system_id: str,
    runner: CommandRunner,
    actor: str,
    paths: list[str],
    tz: str = "Asia/Shanghai",
    run_id: int | None = None,
) -> list[FindingRecord]:
    """``run_id``: the security audit's inspection run (a retried run re-reads the same lines)."""
    from hisops.targets.errors import TargetUnreachable

    key = host_checks.OFFSETS_PREFIX + host.id
    try:
        snap, offsets = host_checks.collect(
            runner,
            host.id,
            [log.path for log in host.logs],
            paths,
            lambda reader: repo.log_offsets(key, reader, run_id),
        )
    except TargetUnreachable as exc:
        return [_unreachable("host", host.id, system_id, exc)]
    finally:
        runner.close()
    out = host_checks.evaluate(snap)
    if snap.complete:
        repo.save_log_offsets(key, offsets.reader, run_id, dict(offsets), listed=offsets.listed)
        out.append(
            _drift_finding(
                "security.sudoers",
                "host",
                host.id,
                "sudoers 文件",
                "sudoers files",
                baseline.compare(repo, host.id, "sudoers", snap.sudoers, actor),
                system_id,
                tz,
            )
        )
    return [_with_system(f, system_id) for f in out]


def _resolve(fn: Callable[[Any], Any], target: Any, kind: str, system_id: str) -> Any:
    """The DSN / runner of a target, or a check_error finding when its connection is unusable."""
    try:
        return fn(target)
    except Exception as exc:  # noqa: BLE001 - a missing Airflow connection is a finding, not a crash
        return [
            finding(
                "security.reachable",
                kind,
                target.id,
                "check_error",  # type: ignore[arg-type]
                f"连接配置不可用，安全检查未执行：{type(exc).__name__}: {str(exc)[:200]}",
                f"connection not usable, security checks not run: {type(exc).__name__}",
                system_id=system_id,
            )
        ]


def run_security_audit(
    repo: CatalogRepository,
    inventory: Inventory,
    run: RunInfo,
    *,
    dsn_for: Callable[[Database], str],
    runner_for: Callable[[Host], CommandRunner],
    reports_dir: Path,
) -> SecurityAuditResult:
    from hisops.report.security import write_report

    run_id = repo.start_inspection_run(run.dag_id, run.run_id, run.logical_date)
    found: list[FindingRecord] = []
    tz = inventory.timezone
    for system in inventory.systems:
        for db in system.databases:
            dsn = _resolve(dsn_for, db, "database", system.id)
            found += (
                dsn
                if isinstance(dsn, list)
                else audit_database(repo, db, system.id, dsn, run.actor, tz)
            )
        for host in system.hosts:
            paths = [*host.backup_paths, str(Path(inventory.reports.path))]
            runner = _resolve(runner_for, host, "host", system.id)
            found += (
                runner
                if isinstance(runner, list)
                else audit_host(repo, host, system.id, runner, run.actor, paths, tz, run_id)
            )
    ids = repo.add_findings(run_id, found)
    changes = [repo.upsert_incident_for(f, i) for f, i in zip(found, ids, strict=True)]
    report = write_report(reports_dir, inventory, run, found)
    repo.finish_inspection_run(run_id, "success", report_path=str(report))
    problems = sum(f.severity != "ok" for f in found)
    opened = sum(1 for c in changes if c is not None and c.action == "opened")
    repo.add_audit_event(
        run.actor,
        "security_audit.run",
        "inventory",
        "success",
        details={"findings": len(found), "problems": problems, "report": str(report)},
        **run.audit_fields(),
    )
    return SecurityAuditResult(run_id, len(found), problems, opened, str(report))
