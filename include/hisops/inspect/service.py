"""The daily inspection as a service, one function per DAG step (第七条).

open_run → inspect_one (per system) → notify_incidents → write_report
(:mod:`hisops.inspect.reporting`) → send_report. Each step records itself in the catalog
(run opened, findings and incidents, run finished with its report, audit event); the Airflow
adapter ``hisops.airflow.inspection_tasks`` only turns the task context into these arguments.
Steps exchange small JSON-able values (work orders, per-system outcomes, report info).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.inspect import alerts

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inspect.run import Access
    from hisops.inventory.models import Inventory
    from hisops.notify import Channel, SendResult
    from hisops.runinfo import RunInfo

log = logging.getLogger(__name__)

ACTION = "inspection"
HISTORICAL_NOTE = " — 补录：检查结果为当前状态，不改动日志位置和事件 (historical: present state)"

#: the notification channels, built only when a message is due (connections resolved then)
Channels = Callable[[], Sequence["Channel"]]


# --------------------------------------------------------------------------- start


def select_systems(inventory: Inventory, wanted: Sequence[str] | None) -> list[str]:
    """System ids to inspect: all, or the ones the run's params name (unknown ids are an error)."""
    known = [s.id for s in inventory.systems]
    if not wanted:
        return known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"unknown system id(s) {unknown}; known: {known}")
    return [s for s in known if s in set(wanted)]


def open_run(
    repo: CatalogRepository,
    inventory: Inventory,
    run: RunInfo,
    systems: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Open the inspection run in the catalog; one work order per system to inspect.

    Work orders are the mapped task's kwargs: ``{system_id, inspection_run_id, historical,
    fold_incidents}`` — historical runs (backfills, earlier days) move no offsets and fold no
    incidents.
    """
    from hisops.inspect.schedule import due_at, semantics

    chosen = select_systems(inventory, systems)
    sem = semantics(run, now or datetime.now().astimezone(), inventory.timezone)
    reference = due_at(run)
    run_pk = repo.start_inspection_run(run.dag_id, run.run_id, reference)
    log.info(
        "巡检记录 inspection run #%s for %s: %d systems %s%s",
        run_pk,
        reference,
        len(chosen),
        chosen,
        HISTORICAL_NOTE if sem.historical else "",
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


def system_label(inventory: Inventory, system_id: str) -> str:
    """门诊系统 Outpatient (outpatient) — the mapped task's name in the UI."""
    try:
        s = inventory.find_system(system_id)
    except KeyError:
        return system_id
    return f"{s.name} {s.name_en} ({s.id})"


def inspect_one(
    repo: CatalogRepository,
    inventory: Inventory,
    system_id: str,
    inspection_run_id: int,
    historical: bool,
    fold_incidents: bool,
    access: Access,
) -> dict[str, Any]:
    """Every database, host and endpoint of one system (bounded threads), recorded in the catalog.

    Log offsets move only when incidents fold: a historical run reads logs but leaves where the
    next current run starts."""
    from hisops.inspect.run import RunContext, inspect_system

    system = inventory.find_system(system_id)
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
    outcome = inspect_system(inventory, system, repo, context, access, progress=log.info)
    log.info(
        "系统 system %s done in %.1fs: %s; incident changes %s",
        system_id,
        outcome.seconds,
        outcome.counts,
        [(c["action"], c["incident_id"]) for c in outcome.changes],
    )
    return outcome.as_dict()


# --------------------------------------------------------------------------- notifications


def _usable(inventory: Inventory, channels: Channels) -> list[Channel]:
    built = list(channels())
    alerts.require_channels(inventory.notifications, built)
    return built


def notify_incidents(
    inventory: Inventory, outcomes: Sequence[Mapping[str, Any]], channels: Channels
) -> dict[str, Any]:
    """Tell supervisors about NEW and ESCALATED incidents only (one message per run)."""
    from hisops.inspect.run import notifiable
    from hisops.notify import send

    changes = notifiable([c for o in outcomes for c in o.get("changes", [])])
    if not changes:
        log.info("无新发或升级事件 no new or escalated incident: nobody is paged")
        return {"notified": 0, "sent": [], "failed": {}}
    title, body = alerts.incident_message(changes, inventory.hospital)
    worst = alerts.alert_severity([c["severity"] for c in changes])
    result = send(_usable(inventory, channels), title, body, severity=worst)
    alerts.require_delivery(result, "incident alert")
    return {"notified": len(changes), "sent": result.sent, "failed": result.failed}


# --------------------------------------------------------------------------- send the report


def send_report(
    repo: CatalogRepository,
    inventory: Inventory,
    plan: Sequence[Mapping[str, Any]],
    report_info: Mapping[str, Any],
    run: RunInfo,
    channels: Channels,
) -> dict[str, Any]:
    """Send the report to the supervisors (the HTML page to e-mail, a text summary to chat
    robots) and record the run's audit event."""
    from hisops.notify import send

    html = Path(report_info["mail_html"]).read_text(encoding="utf-8")
    attach = [Path(report_info["path"])] if report_info["mail_html"] != report_info["path"] else []
    worst = alerts.alert_severity([s for s, n in report_info["counts"].items() if n])
    result = send(
        alerts.report_channels(_usable(inventory, channels), worst),
        report_info["subject"],
        report_info["summary"],
        severity=worst,
        html=html,
        attachments=attach,
    )
    alerts.require_delivery(result, "inspection report")
    _audit(repo, run_of(plan), report_info, result, run)
    return {"sent": result.sent, "failed": result.failed, "skipped": result.skipped}


def _audit(
    repo: CatalogRepository,
    start_info: Mapping[str, Any],
    report_info: Mapping[str, Any],
    result: SendResult,
    run: RunInfo,
) -> None:
    repo.add_audit_event(
        actor=run.dag_id,
        action=ACTION,
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
        **run.audit_fields(),
    )
