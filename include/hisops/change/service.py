"""变更管理 service: each function is one step of a change, recorded as a ``change_step``, an audit
event and the change's state — the DAG calls them in order; tests call them without a scheduler.

States: requested → assessed → backed_up → approved → running → completed | pending_restart
(a configuration value written but waiting for a restart hisops was not allowed to do) |
rolled_back | failed_revert; or assessment_failed / refused (no fresh backup, approver not
allowed) / rejected / cancelled (approval timed out) — those never touched a target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hisops.change import database as db
from hisops.change import host as hosts
from hisops.change.request import ChangeRequest, Scripts, from_params
from hisops.change.results import StepResult, failed, passed

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory
    from hisops.notify import Channel
    from hisops.runinfo import RunInfo
    from hisops.targets.runner import CommandRunner

log = logging.getLogger(__name__)

TARGET = "change:{}"
BACKUP_MAX_AGE = timedelta(hours=24)
INCIDENT_CHECK = "change.failed"


class ChangeStopped(RuntimeError):
    """The change cannot go on (the step and why are recorded); the DAG task fails with this."""


@dataclass(frozen=True)
class Access:
    """How targets are reached: the Airflow glue resolves connections, tests pass their own."""

    dsn_for: Callable[[Any], str]
    runner_for: Callable[[Any], CommandRunner]


# --------------------------------------------------------------------------- records


def request_of(repo: CatalogRepository, change_id: int) -> ChangeRequest:
    """The request as stored with the change (scripts included, so later
    steps run what was assessed)."""
    change = repo.get_change(change_id)
    if change is None:
        raise ChangeStopped(f"change {change_id} does not exist")
    stored = dict(change.details["request"])
    scripts = stored.pop("scripts", None)
    for key in ("script_sha256", "content_sha256"):
        stored.pop(key, None)
    stored["content"] = change.details.get("content")
    return ChangeRequest(**stored, scripts=Scripts(**scripts) if scripts else None)


def _record(
    repo: CatalogRepository,
    change_id: int,
    result: StepResult,
    run: RunInfo,
    state: str | None = None,
    audit_result: str | None = None,
    **flags: Any,
) -> StepResult:
    step_state = "passed" if result.ok else "failed"
    repo.add_change_step(change_id, result.step, step_state, result.as_dict())
    if state is not None:
        repo.set_change_state(change_id, state, **flags)
    outcome = audit_result or ("success" if result.ok else "failure")
    repo.add_audit_event(
        run.actor,
        f"change.{result.step}",
        TARGET.format(change_id),
        outcome,  # type: ignore[arg-type]
        details={"change_id": change_id, "summary": result.summary, "state": state},
        **run.audit_fields(),
    )
    log.info("变更 change #%s %s: %s", change_id, result.step, result.summary)
    return result


def _stop(result: StepResult) -> None:
    raise ChangeStopped(f"{result.step}: {result.summary}")


# --------------------------------------------------------------------------- 1 request


def open_request(
    repo: CatalogRepository, inventory: Inventory, params: dict[str, Any], run: RunInfo
) -> int:
    """The form → a change in state ``requested`` (who, why, expected impact), or RequestError."""
    request = from_params(params, run.actor, inventory.base_dir)
    if request.database_id:
        inventory.locate_database(request.database_id)  # KeyError naming the known ids
    if request.host_id:
        inventory.locate_host(request.host_id)
    details = {"request": request.describe(), "content": request.content}
    change_id = repo.create_change(
        request.title,
        run.actor,
        description=request.reason,
        details=details,
        kind=request.kind,
        targets=request.targets,
        dag_run_id=run.run_id,
    )
    _record(
        repo,
        change_id,
        passed(
            "request",
            f"{run.actor} 申请：{request.title}；预期影响：{request.impact}",
            f"{run.actor} requests: {request.title}; expected impact: {request.impact}",
            kind=request.kind,
            targets=request.targets,
        ),
        run,
    )
    return change_id


# --------------------------------------------------------------------------- 2 assessment


def _database(inventory: Inventory, request: ChangeRequest) -> Any:
    return inventory.locate_database(request.database_id or "")[1]


def _host(inventory: Inventory, request: ChangeRequest) -> Any:
    return inventory.locate_host(request.host_id or "")[1]


def _with_runner(
    inventory: Inventory,
    access: Access,
    request: ChangeRequest,
    fn: Callable[[CommandRunner], StepResult],
) -> StepResult:
    runner = access.runner_for(_host(inventory, request))
    try:
        return fn(runner)
    finally:
        runner.close()


def assess(
    repo: CatalogRepository, inventory: Inventory, change_id: int, access: Access, run: RunInfo
) -> StepResult:
    """Compatibility assessment (versions, disk, replication, dry run / simulation)."""
    request = request_of(repo, change_id)
    if request.kind == "sql":
        result = db.assess_sql(access.dsn_for(_database(inventory, request)), request)
    elif request.kind == "pg_config":
        result = db.assess_pg_config(access.dsn_for(_database(inventory, request)), request)
    elif request.kind == "package":
        result = _with_runner(
            inventory, access, request, lambda r: hosts.assess_package(r, request)
        )
    else:
        result = _with_runner(
            inventory, access, request, lambda r: hosts.assess_config_file(r, request)
        )
    _record(
        repo,
        change_id,
        result,
        run,
        state="assessed" if result.ok else "assessment_failed",
        finished=not result.ok,
    )
    if not result.ok:
        _stop(result)
    return result


# --------------------------------------------------------------------------- 3 backup gate


def backup_gate(
    repo: CatalogRepository,
    inventory: Inventory,
    change_id: int,
    run: RunInfo,
    now: datetime | None = None,
) -> StepResult:
    """A fresh verified backup of every affected database, or the change stops before approval."""
    from hisops.safeguards.backup import check_fresh_backup

    request = request_of(repo, change_id)
    databases = [request.database_id] if request.database_id else []
    verdicts = [
        check_fresh_backup(repo, inventory, d, max_age=BACKUP_MAX_AGE, now=now) for d in databases
    ]
    bad = [v for v in verdicts if not v.ok]
    details = {"verdicts": [v.as_dict() for v in verdicts]}
    if bad:
        result = failed(
            "backup",
            "；".join(v.reason_zh for v in bad),
            "; ".join(v.reason_en for v in bad),
            **details,
        )
        _record(
            repo, change_id, result, run, state="refused", audit_result="refused", finished=True
        )
        _stop(result)
    backup_id = verdicts[0].details.get("backup_id") if verdicts else None
    result = (
        passed(
            "backup",
            "；".join(v.reason_zh for v in verdicts),
            "; ".join(v.reason_en for v in verdicts),
            **details,
        )
        if verdicts
        else passed(
            "backup",
            "不涉及数据库，无需数据库备份",
            "no database affected: no database backup needed",
        )
    )
    return _record(repo, change_id, result, run, state="backed_up", pre_backup_id=backup_id)


# --------------------------------------------------------------------------- 4 approval


def approval_text(repo: CatalogRepository, change_id: int) -> tuple[str, str]:
    """(subject, Markdown body) of the approval request: the request and its assessment."""
    change = repo.get_change(change_id)
    assert change is not None
    request = change.details["request"]
    steps = {s.step: s.details for s in repo.change_steps(change_id)}
    assessment = steps.get("assessment", {})
    lines = [
        f"**变更 Change #{change_id}: {change.title}** ({request['kind']})",
        "",
        f"- 申请人 Requested by: {change.requested_by}",
        f"- 原因 Reason: {request.get('reason')}",
        f"- 预期影响 Expected impact: {request.get('impact')}",
        f"- 目标 Targets: {', '.join(change.targets)}",
        f"- 评估 Assessment: {assessment.get('summary_zh')} ({assessment.get('summary_en')})",
        f"- 备份 Backup: {steps.get('backup', {}).get('summary_zh', '—')}",
        "",
    ]
    facts = assessment.get("details", {})
    lines += [
        f"  - {k}: `{v}`"
        for k, v in facts.items()
        if k not in ("simulation",) and not isinstance(v, dict)
    ]
    if request.get("scripts"):
        lines += [
            "",
            "部署脚本 deploy:",
            "```sql",
            request["scripts"]["deploy"],
            "```",
            "回退脚本 revert:",
            "```sql",
            request["scripts"]["revert"],
            "```",
        ]
    lines += [
        "",
        "批准人须为系统管理员及以上，且不得为申请人。"
        "Approver: 系统管理员 or higher, not the requester.",
    ]
    return f"变更审批 Change approval #{change_id}: {change.title}", "\n".join(lines)


def record_approval(
    repo: CatalogRepository,
    change_id: int,
    run: RunInfo,
    *,
    approver: str | None,
    approver_roles: set[str],
    approved: bool,
    timed_out: bool = False,
) -> StepResult:
    """The HITL answer → approved, or refused / rejected / cancelled
    (timeout) — nothing applied then."""
    from hisops.safeguards.approval import ApprovalRequest, check_approval

    change = repo.get_change(change_id)
    if change is None or change.state != "backed_up":
        raise ChangeStopped(
            f"change {change_id} is {getattr(change, 'state', 'missing')!r}: nothing to approve"
        )
    if timed_out:
        result = failed(
            "approval",
            "审批超时，变更已取消，未做任何更改",
            "approval timed out: the change is cancelled, nothing was applied",
        )
        _record(
            repo, change_id, result, run, state="cancelled", audit_result="refused", finished=True
        )
        _stop(result)
    verdict = check_approval(
        ApprovalRequest(change.requested_by, approver, frozenset(approver_roles), approved)
    )
    if not verdict.ok:
        state = "rejected" if approver and not approved else "refused"
        result = failed("approval", verdict.reason_zh, verdict.reason_en, **verdict.details)
        _record(repo, change_id, result, run, state=state, audit_result="refused", finished=True)
        _stop(result)
    result = passed("approval", verdict.reason_zh, verdict.reason_en, **verdict.details)
    return _record(repo, change_id, result, run, state="approved", approved_by=approver)


# -------------------------------------------------------------------------- 5 apply, verify, revert


def _window(inventory: Inventory, now: datetime | None) -> Any:
    from zoneinfo import ZoneInfo

    from hisops.safeguards.window import check_window

    return check_window(inventory.maintenance_window, ZoneInfo(inventory.timezone), now)


def _apply(
    inventory: Inventory, access: Access, request: ChangeRequest, change_id: int
) -> StepResult:
    if request.kind == "sql":
        return db.apply_sql(access.dsn_for(_database(inventory, request)), request)
    if request.kind == "pg_config":
        return db.apply_pg_config(access.dsn_for(_database(inventory, request)), request)
    if request.kind == "package":
        return _with_runner(inventory, access, request, lambda r: hosts.apply_package(r, request))
    return _with_runner(
        inventory, access, request, lambda r: hosts.apply_config_file(r, request, change_id)
    )


def _verify(
    inventory: Inventory, access: Access, request: ChangeRequest, step: str, before: dict[str, Any]
) -> StepResult:
    if request.kind == "sql":
        result = db.verify_sql(access.dsn_for(_database(inventory, request)), request, step)
    elif request.kind == "pg_config":
        result = db.verify_pg_config(access.dsn_for(_database(inventory, request)), request, step)
    elif request.kind == "package":
        result = _with_runner(
            inventory, access, request, lambda r: hosts.verify_package(r, request, step)
        )
    else:
        result = _with_runner(
            inventory,
            access,
            request,
            lambda r: hosts.verify_config_file(r, request, step, expected=before.get("sha256")),
        )
    return _with_health(inventory, access, request, result)


def _with_health(
    inventory: Inventory, access: Access, request: ChangeRequest, result: StepResult
) -> StepResult:
    """The inspection's checks of the affected database: a critical
    finding fails the verification."""
    if not request.database_id or not result.ok:
        return result
    from hisops.inspect.engine import inspect_database

    system, database = inventory.locate_database(request.database_id)
    findings = inspect_database(
        system, database, access.dsn_for(database), inventory.thresholds_for(database)
    )
    critical = [f"{f.check_id}: {f.message_zh}" for f in findings if f.severity == "critical"]
    health = {"checks": len(findings), "critical": critical}
    if critical:
        return failed(
            result.step,
            f"巡检检查发现严重问题：{critical[0]}",
            f"inspection checks found: {critical[0]}",
            **result.details,
            health=health,
        )
    return dataclasses.replace(result, details={**result.details, "health": health})


def _revert(
    inventory: Inventory, access: Access, request: ChangeRequest, before: dict[str, Any]
) -> StepResult:
    if request.kind == "sql":
        return db.revert_sql(access.dsn_for(_database(inventory, request)), request, before)
    if request.kind == "pg_config":
        return db.revert_pg_config(access.dsn_for(_database(inventory, request)), request, before)
    if request.kind == "package":
        return _with_runner(
            inventory, access, request, lambda r: hosts.revert_package(r, request, before)
        )
    return _with_runner(
        inventory, access, request, lambda r: hosts.revert_config_file(r, request, before)
    )


@dataclass(frozen=True)
class Outcome:
    change_id: int
    state: str
    incident_id: int | None = None
    notified: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_and_verify(
    repo: CatalogRepository,
    inventory: Inventory,
    change_id: int,
    access: Access,
    run: RunInfo,
    channels: list[Channel],
    now: datetime | None = None,
) -> Outcome:
    """Inside the window: apply → verify; on failure revert → verify again; record the outcome.
    A failed change opens an incident; a failed revert opens a critical
    one and tells the supervisors."""
    change = repo.get_change(change_id)
    if change is None or change.state != "approved":
        raise ChangeStopped(
            f"change {change_id} is {getattr(change, 'state', 'missing')!r}, not approved"
        )
    window = _window(inventory, now)
    if not window.ok:
        result = failed("apply", window.reason_zh, window.reason_en, **window.details)
        _record(repo, change_id, result, run)  # stays approved: re-run inside the window
        _stop(result)
    request = request_of(repo, change_id)
    applied = _record(
        repo,
        change_id,
        _apply(inventory, access, request, change_id),
        run,
        state="running",
        started=True,
    )
    before = applied.details.get("before", {})
    restarted = False
    if applied.ok and request.kind == "pg_config":
        restart = _restart_if_pending(inventory, access, request, now)
        if restart is not None:
            applied = _record(repo, change_id, restart, run)
            restarted = bool(restart.details.get("restarted"))
    if applied.ok:
        verified = _record(
            repo, change_id, _verify(inventory, access, request, "verify", before), run
        )
        if verified.ok and verified.details.get("pending_restart"):
            return _pending_restart(repo, change_id, run, request, channels)
        if verified.ok:
            _record(
                repo,
                change_id,
                passed("outcome", "变更成功并已验证", "change applied and verified"),
                run,
                state="completed",
                finished=True,
            )
            return Outcome(change_id, "completed")
    repo.set_change_state(change_id, "running", failed=True)
    reverted = _record(repo, change_id, _revert(inventory, access, request, before), run)
    if reverted.ok and restarted:  # the previous value of a restart parameter needs one too
        again_restart = _restart_if_pending(inventory, access, request, now)
        if again_restart is not None:
            reverted = _record(repo, change_id, again_restart, run)
    again = (
        _record(
            repo, change_id, _verify(inventory, access, request, "verify_after_revert", before), run
        )
        if reverted.ok
        else reverted
    )
    state = "rolled_back" if again.ok else "failed_revert"
    return _failed_change(
        repo, change_id, run, request, state, channels, _system_of(inventory, request)
    )


def _restart_if_pending(
    inventory: Inventory, access: Access, request: ChangeRequest, now: datetime | None
) -> StepResult | None:
    """After the reload: None when nothing waits for a restart; else the planned restart (allowed
    by the request, inside the window, on the server the inventory names) or why there was none."""
    from hisops.change import restart as rs
    from hisops.inventory.models import Host
    from hisops.targets.errors import TargetUnreachable

    _, database = inventory.locate_database(request.database_id or "")
    dsn = access.dsn_for(database)
    try:
        if not rs.pending_restart(dsn, request.parameter or "", database.id):
            return None
    except TargetUnreachable as exc:
        return failed(
            rs.STEP, f"无法连接数据库：{exc.reason}", f"database unreachable: {exc.reason}"
        )
    if not request.restart_allowed:
        return rs.not_restarted("申请未允许重启", "the request does not allow a restart")
    window = _window(inventory, now)
    if not window.ok:
        return rs.not_restarted(window.reason_zh, window.reason_en, window=window.details)
    if not database.server:
        return rs.not_restarted(
            f"清单未写明数据库 {database.id} 所在的服务器（server）",
            f"the inventory names no server for database {database.id}",
        )
    _, server = inventory.locate_server(database.server)
    host = (
        inventory.locate_host(server.host)[1]
        if server.host
        else Host(id=f"{server.id}-host", local=True)  # the inventory's "None = this machine"
    )
    runner = access.runner_for(host)
    try:
        return rs.planned_restart(runner, dsn, server, request)
    finally:
        runner.close()


def _pending_restart(
    repo: CatalogRepository,
    change_id: int,
    run: RunInfo,
    request: ChangeRequest,
    channels: list[Channel],
) -> Outcome:
    """Written and reloaded, but the value waits for a restart hisops did not do: recorded as
    ``pending_restart`` and the requester is told (through the notification channels)."""
    from hisops.notify import send

    zh = f"{request.parameter} = {request.value} 已写入，待重启数据库后生效"
    en = f"{request.parameter} = {request.value} is set; it takes effect at the next restart"
    _record(
        repo,
        change_id,
        passed("outcome", zh, en, pending_restart=True),
        run,
        state="pending_restart",
        finished=True,
    )
    result = send(
        channels,
        f"变更待重启 change pending restart #{change_id} · 申请人 requester {request.requested_by}",
        f"{request.requested_by}：变更 #{change_id}「{request.title}」{zh}。\n"
        f"{request.requested_by}: change #{change_id} {request.title!r}: {en}.\n"
        f"目标 targets: {', '.join(request.targets)}",
        severity="warn",
    )
    return Outcome(change_id, "pending_restart", notified=result.sent)


def _system_of(inventory: Inventory, request: ChangeRequest) -> str | None:
    """The system the change's target belongs to (the incident and the KPI report say so)."""
    if request.database_id:
        return inventory.locate_database(request.database_id)[0].id
    if request.host_id:
        return inventory.locate_host(request.host_id)[0].id
    return None


def _failed_change(
    repo: CatalogRepository,
    change_id: int,
    run: RunInfo,
    request: ChangeRequest,
    state: str,
    channels: list[Channel],
    system_id: str | None = None,
) -> Outcome:
    from hisops.catalog.records import FindingRecord
    from hisops.notify import send

    severity = "critical" if state == "failed_revert" else "warn"
    zh = (
        "变更失败且回退失败，系统可能处于不一致状态"
        if state == "failed_revert"
        else "变更验证失败，已回退并验证"
    )
    en = (
        "change failed and its revert failed: the target may be inconsistent"
        if state == "failed_revert"
        else "change verification failed; reverted and verified again"
    )
    finding = FindingRecord(
        check_id=INCIDENT_CHECK,
        target_kind="system",
        target_id=TARGET.format(change_id),
        system_id=system_id,
        severity=severity,
        message_zh=f"变更 #{change_id}「{request.title}」：{zh}",  # type: ignore[arg-type]
        message_en=f"change #{change_id} {request.title!r}: {en}",
        details={"change_id": change_id, "targets": request.targets},
        observed_at=datetime.now(UTC),
    )
    incident = repo.upsert_incident_for(finding, None)
    incident_id = incident.incident.id if incident else None
    _record(
        repo,
        change_id,
        failed("outcome", zh, en, incident_id=incident_id),
        run,
        state=state,
        finished=True,
        incident_id=incident_id,
    )
    notified: list[str] = []
    if state == "failed_revert":
        result = send(
            channels,
            f"严重 CRITICAL · 变更回退失败 change revert failed #{change_id}",
            f"{finding.message_zh}\n{finding.message_en}\n目标 targets: "
            f"{', '.join(request.targets)}",
            severity="critical",
        )
        notified = result.sent
    return Outcome(change_id, state, incident_id, notified)


# --------------------------------------------------------------------------- 6 the page


def publish_page(repo: CatalogRepository, inventory: Inventory, change_id: int) -> str:
    """Write the change's page (0600) under reports.path/changes/ and remember its path."""
    from hisops.kpi.files import write_private
    from hisops.report.kpi import render_change_page

    change = repo.get_change(change_id)
    assert change is not None
    html = render_change_page(
        hospital=inventory.hospital,
        tz=inventory.timezone,
        change=change,
        steps=repo.change_steps(change_id),
    )
    path = inventory.resolve_path(inventory.reports.path) / "changes" / f"change-{change_id}.html"
    write_private(path, html.encode("utf-8"))
    repo.set_change_state(change_id, change.state, details={"page_path": str(path)})
    return str(path)


def settle(
    repo: CatalogRepository,
    inventory: Inventory,
    change_id: int,
    run: RunInfo,
    *,
    approver: str | None,
    approver_roles: set[str],
    approved: bool,
    timed_out: bool,
) -> dict[str, Any]:
    """The DAG's last step: a change still waiting for its approval timed out — record that; then
    write the page. Returns the final state; raises ChangeStopped
    (after the page) unless completed."""
    change = repo.get_change(change_id)
    assert change is not None
    if change.state == "backed_up":
        with contextlib.suppress(
            ChangeStopped
        ):  # recorded; the run's approval task already ended it
            record_approval(
                repo,
                change_id,
                run,
                approver=approver,
                approver_roles=approver_roles,
                approved=approved and not timed_out,
                timed_out=timed_out,
            )
    page = publish_page(repo, inventory, change_id)
    state = repo.get_change(change_id).state  # type: ignore[union-attr]
    if state not in ("completed", "pending_restart"):  # the run's colour: did the change happen
        raise ChangeStopped(f"change {change_id} ended {state!r} (page: {page})")
    return {"change_id": change_id, "state": state, "page": page}
