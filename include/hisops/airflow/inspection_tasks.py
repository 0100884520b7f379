"""Task bodies of the 每日巡检 daily-inspection DAG (the DAG file only wires them).

start → inspect_system (mapped, one per system) → notify_incidents → report → send_report.
Task bodies receive small values (ids, flags, per-system summaries) and keep big data in the
catalog and on disk.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from hisops.airflow import runtime

log = logging.getLogger(__name__)

DAG_ID = "daily_inspection"
TREND_WINDOW = timedelta(days=7)
EMAIL = "email"
ALERT_LINES = 30  # chat robots cap message size (WeCom: 4096 bytes)
MAIL_INLINE_LIMIT = 200_000  # bytes of HTML; a bigger report is mailed as summary + attachment


# --------------------------------------------------------------------------- start


def select_systems(inventory: Any, wanted: Sequence[str] | None) -> list[str]:
    """System ids to inspect: all, or the ones the run's params name (unknown ids are an error)."""
    known = [s.id for s in inventory.systems]
    if not wanted:
        return known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"unknown system id(s) {unknown}; known: {known}")
    return [s for s in known if s in set(wanted)]


def start(
    run_id: str,
    run_type: str | None,
    logical_date: datetime | None,
    run_after: datetime | None,
    systems: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Open the inspection run in the catalog; one work order per system to inspect.

    Work orders are the mapped task's kwargs: ``{system_id, inspection_run_id, historical,
    fold_incidents}`` — historical runs (backfills, earlier days) move no offsets, fold no incidents.
    """
    from hisops.inspect.schedule import due_at, semantics
    from hisops.runinfo import RunInfo

    inv = runtime.inventory()
    chosen = select_systems(inv, systems)
    run = RunInfo(
        DAG_ID, run_id, run_type=_run_type(run_type), logical_date=logical_date, run_after=run_after
    )
    sem = semantics(run, datetime.now().astimezone(), inv.timezone)
    reference = due_at(run)
    run_pk = runtime.catalog().start_inspection_run(DAG_ID, run_id, reference)
    log.info(
        "巡检记录 inspection run #%s for %s: %d systems %s%s",
        run_pk,
        reference,
        len(chosen),
        chosen,
        " — 补录：检查结果为当前状态，不改动日志位置和事件 (historical: present state)"
        if sem.historical
        else "",
    )
    return [
        {
            "system_id": s,
            "inspection_run_id": run_pk,
            "historical": sem.historical,
            "fold_incidents": sem.fold_incidents,
        }
        for s in chosen
    ]


def _run_type(value: Any) -> str:
    text = str(getattr(value, "value", value) or "manual").lower()
    return text.split(".")[-1]


def run_of(plan: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run-level facts of the work orders: catalog run id, historical flag, system ids."""
    if not plan:
        raise ValueError("no system to inspect (empty plan)")
    return {
        "inspection_run_id": plan[0]["inspection_run_id"],
        "historical": plan[0]["historical"],
        "systems": [w["system_id"] for w in plan],
    }


# --------------------------------------------------------------------------- per system


def system_label(system_id: str) -> str:
    """门诊系统 Outpatient (outpatient) — the mapped task's name in the UI."""
    try:
        s = runtime.inventory().find_system(system_id)
    except KeyError:
        return system_id
    return f"{s.name} {s.name_en} ({s.id})"


def access() -> Any:
    from hisops.inspect.run import Access

    return Access(
        dsn_for=runtime.dsn_for,
        runner_for=runtime.runner_for,
        pgbackrest_for=runtime.pgbackrest_for,
    )


def inspect_system(
    system_id: str, inspection_run_id: int, historical: bool, fold_incidents: bool = True
) -> dict[str, Any]:
    """Every database, host and endpoint of one system (bounded threads), recorded in the catalog."""
    from hisops.inspect.run import RunContext
    from hisops.inspect.run import inspect_system as run_system

    inv = runtime.inventory()
    system = inv.find_system(system_id)
    log.info(
        "系统 system %s %s: %d databases, %d hosts, %d endpoints",
        system.name,
        system.name_en,
        len(system.databases),
        len(system.hosts),
        len(system.endpoints),
    )
    context = RunContext(
        inspection_run_id=inspection_run_id,
        historical=historical,
        fold_incidents=fold_incidents,
        advance_offsets=fold_incidents,
    )
    outcome = run_system(inv, system, runtime.catalog(), context, access(), progress=log.info)
    log.info(
        "系统 system %s done in %.1fs: %s; incident changes %s",
        system_id,
        outcome.seconds,
        outcome.counts,
        [(c["action"], c["incident_id"]) for c in outcome.changes],
    )
    return outcome.as_dict()


# --------------------------------------------------------------------------- notifications


def _channels() -> list[Any]:
    """The inventory's channels; a channel whose connection is unusable is skipped with a warning,
    but when channels are configured and none is usable, nobody could be told: that fails."""
    from hisops.airflow.notify_glue import channels_from_inventory

    configured = runtime.inventory().notifications
    channels = channels_from_inventory(configured, strict=False)
    if configured and not channels:
        raise RuntimeError(
            "no notification channel is usable 通知渠道均不可用 — check the connections named in "
            f"`notifications:` ({', '.join(n.conn_id for n in configured)})"
        )
    return channels


def _worst(severities: Sequence[str]) -> str:
    from hisops.catalog.records import SEVERITY_RANK

    worst = max(severities, key=lambda s: SEVERITY_RANK.get(s, 0), default="ok")
    return "warn" if worst == "check_error" else worst


def incident_message(changes: Sequence[Mapping[str, Any]], hospital: str) -> tuple[str, str]:
    """(title, body) of the new/escalated-incident alert, Chinese first; at most ALERT_LINES listed."""
    new = sum(1 for c in changes if c["action"] == "opened")
    up = len(changes) - new
    title = f"巡检告警 Inspection alert · {hospital} · 新发 new {new} / 升级 escalated {up}"
    lines = [_alert_line(c) for c in changes[:ALERT_LINES]]
    if len(changes) > ALERT_LINES:
        lines.append(
            f"… 另有 {len(changes) - ALERT_LINES} 项，见巡检报告 ({len(changes) - ALERT_LINES} more in the report)"
        )
    lines.append(
        "处理后下一次巡检将自动关闭事件。The incident closes itself at the next inspection after the fix."
    )
    return title, "\n".join(lines)


def _alert_line(c: Mapping[str, Any]) -> str:
    verb = (
        "新发 NEW"
        if c["action"] == "opened"
        else f"升级 ESCALATED (from {c.get('previous_severity')})"
    )
    return (
        f"[{verb}] #{c['incident_id']} {c['severity']} {c['target_id']} {c['check_id']}: "
        f"{c['title_zh']} ({c['title_en']})"
    )


def notify_incidents(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Tell supervisors about NEW and ESCALATED incidents only (one message per run)."""
    from hisops.inspect.run import notifiable
    from hisops.notify import send

    changes = notifiable([c for o in outcomes for c in o.get("changes", [])])
    if not changes:
        log.info("无新发或升级事件 no new or escalated incident: nobody is paged")
        return {"notified": 0, "sent": [], "failed": {}}
    title, body = incident_message(changes, runtime.inventory().hospital)
    result = send(_channels(), title, body, severity=_worst([c["severity"] for c in changes]))
    _require_delivery(result, "incident alert")
    return {"notified": len(changes), "sent": result.sent, "failed": result.failed}


def _require_delivery(result: Any, what: str) -> None:
    """Fail (→ retry, red in the UI) when every channel that should have received the message failed."""
    if result.failed and not result.sent:
        raise RuntimeError(f"{what} reached no supervisor channel 未能通知主管: {result.failed}")
    if result.failed:
        log.warning("%s: some channels failed: %s", what, result.failed)


# --------------------------------------------------------------------------- report


def _system_infos(inv: Any, system_ids: Sequence[str]) -> list[Any]:
    from hisops.report import SystemInfo

    infos = []
    for sid in system_ids:
        s = inv.find_system(sid)
        targets = (
            [("database", d.id) for d in s.databases]
            + [("host", h.id) for h in s.hosts]
            + [("endpoint", e.id) for e in s.endpoints]
        )
        infos.append(SystemInfo(s.id, s.name, s.name_en, s.owner, tuple(targets)))
    return infos


def trend_keys(inv: Any, infos: Sequence[Any]) -> list[tuple[str, str]]:
    """(target id, metric) pairs of the key metrics of every inspected target."""
    from hisops.report.render import trend_metrics

    keys = []
    for info in infos:
        for kind, target_id in info.targets:
            paths = inv.find_host(target_id).disk_paths if kind == "host" else ()
            keys += [(target_id, m) for m in trend_metrics(kind, paths)]
    return keys


def trend_samples(repo: Any, keys: Sequence[tuple[str, str]], end: datetime) -> list[Any]:
    """Samples of ``keys`` over the trend window ending at ``end`` (later samples left out)."""
    since = end - TREND_WINDOW - timedelta(days=1)
    return [
        s
        for target_id, metric in keys
        for s in repo.metric_series(target_id, metric, since=since)
        if s.observed_at <= end
    ]


def report_data(
    plan: Sequence[Mapping[str, Any]],
    outcomes: Sequence[Mapping[str, Any]],
    run_id: str,
    logical_date: datetime | None,
    period: tuple[datetime | None, datetime | None],
) -> Any:
    from hisops.report import ReportData

    inv, repo = runtime.inventory(), runtime.catalog()
    start_info = run_of(plan)
    run_pk = start_info["inspection_run_id"]
    infos = _system_infos(inv, start_info["systems"])
    now = datetime.now().astimezone()
    # the day the report is for: the day it runs, unless historical (then the day the run was due)
    due = repo.get_inspection_run(run_pk).logical_date or logical_date
    report_for = due if start_info["historical"] else None
    end = report_for or now
    return ReportData(
        hospital=inv.hospital,
        timezone=inv.timezone,
        run_id=run_id,
        generated_at=now,
        systems=infos,
        findings=repo.findings_for(run_pk),
        open_incidents=repo.open_incidents(),
        changes=[c for o in outcomes for c in o.get("changes", [])],
        samples=trend_samples(repo, trend_keys(inv, infos), end),
        logical_date=report_for,
        period_start=period[0],
        period_end=period[1],
        historical=start_info["historical"],
        inspection_run_id=run_pk,
    )


def report(
    plan: Sequence[Mapping[str, Any]],
    outcomes: Sequence[Mapping[str, Any]],
    run_id: str,
    logical_date: datetime | None,
    period: tuple[datetime | None, datetime | None],
) -> dict[str, Any]:
    """Render the 巡检报告, save it (0600) under reports.path/<day>/, store its path in the catalog.

    A report too big to read in a mail gets a summary variant for the mail body (saved beside it).
    """
    from hisops.report import (
        render_report,
        report_day,
        save_report,
        severity_counts,
        subject,
        text_summary,
    )

    data = report_data(plan, outcomes, run_id, logical_date, period)
    inv = runtime.inventory()
    from hisops.airflow.shared_storage import reports_root

    folder, day = reports_root(inv, "daily_inspection"), report_day(data)
    html = render_report(data)
    path = save_report(html, folder, day, run_id)
    mail = path
    if len(html.encode("utf-8")) > MAIL_INLINE_LIMIT:
        mail = save_report(render_report(data, summary_only=True), folder, day, f"{run_id}-mail")
    runtime.catalog().finish_inspection_run(
        data.inspection_run_id, "success", report_path=str(path)
    )
    counts = dict(severity_counts(data.findings))
    log.info(
        "巡检报告 report written: %s (%d KB) — %s, open incidents %d",
        path,
        len(html) // 1024,
        counts,
        len(data.open_incidents),
    )
    return {
        "path": str(path),
        "mail_html": str(mail),
        "counts": counts,
        "open_incidents": len(data.open_incidents),
        "subject": subject(data),
        "summary": text_summary(data, str(path)),
    }


# --------------------------------------------------------------------------- send the report


def report_channels(channels: Sequence[Any], worst: str) -> list[Any]:
    """E-mail always gets the daily report (it is the record for the supervisor); chat channels
    (WeCom, DingTalk, webhooks) only when something is at least their ``min_severity``."""
    from hisops.notify import severity_rank

    out = []
    for ch in channels:
        if ch.kind == EMAIL:
            out.append(dataclasses.replace(ch, min_severity="ok"))
        elif worst != "ok" and severity_rank(worst) >= severity_rank(ch.min_severity):
            out.append(ch)
    return out


def send_report(
    plan: Sequence[Mapping[str, Any]], report_info: Mapping[str, Any], run_id: str
) -> dict[str, Any]:
    """Send the report to the supervisors: the HTML page to e-mail, a text summary to chat robots."""
    from pathlib import Path

    from hisops.airflow.shared_storage import reports_root
    from hisops.notify import send

    reports_root(
        runtime.inventory(), "daily_inspection"
    )  # the report another worker wrote is here?
    html = Path(report_info["mail_html"]).read_text(encoding="utf-8")
    attach = [Path(report_info["path"])] if report_info["mail_html"] != report_info["path"] else []
    worst = _worst([s for s, n in report_info["counts"].items() if n])
    channels = report_channels(_channels(), worst)
    result = send(
        channels,
        report_info["subject"],
        report_info["summary"],
        severity=worst,
        html=html,
        attachments=attach,
    )
    _require_delivery(result, "inspection report")
    _audit(run_of(plan), report_info, result, run_id)
    return {"sent": result.sent, "failed": result.failed, "skipped": result.skipped}


def _audit(
    start_info: Mapping[str, Any], report_info: Mapping[str, Any], result: Any, run_id: str
) -> None:
    runtime.catalog().add_audit_event(
        actor=DAG_ID,
        action="inspection",
        target="inventory",
        result="success",
        details={
            "inspection_run_id": start_info["inspection_run_id"],
            "counts": report_info["counts"],
            "report_path": report_info["path"],
            "sent": result.sent,
            "failed": result.failed,
            "historical": start_info["historical"],
        },
        dag_id=DAG_ID,
        run_id=run_id,
    )
