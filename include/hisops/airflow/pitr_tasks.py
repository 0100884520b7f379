"""Task bodies of pitr_backup (物理备份): Airflow context → plain arguments → one pitr service call.

Import-cheap: the DAG file imports this at parse time; drivers and the domain are imported inside.
Assets: every completed physical backup emits ``Asset("hisops://pitr/<server_id>")`` through the
outlet alias ``hisops-pitr`` (extra ``{backup_id, kind: physical, label, type}``); backup_verification
is scheduled on them and drills the new backup.
"""

from __future__ import annotations

import logging
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label

log = logging.getLogger(__name__)
PITR_ALIAS = "hisops-pitr"
TYPE_CHOICES = ("auto", "full", "diff", "incr")


def pitr_alias():
    from airflow.sdk import AssetAlias

    return AssetAlias(PITR_ALIAS)


def pitr_timetable(inventory: Any) -> Any:
    """Every cron of every server's ``pitr.schedule`` (None when no server has a pitr: block)."""
    from airflow.sdk import MultipleCronTriggerTimetable

    from hisops.pitr.schedule import crons

    found = sorted(
        {
            c
            for _, srv in inventory.all_servers()
            if srv.pitr
            for c in crons(srv.pitr.schedule).values()
        }
    )
    return MultipleCronTriggerTimetable(*found, timezone=inventory.timezone) if found else None


def pitr_server_ids(inventory: Any) -> list[str]:
    return [srv.id for _, srv in inventory.all_servers() if srv.pitr]


def write_config(server: Any, pgbr: Any) -> None:
    from hisops.pitr.config import ensure_repo_dir, write_command, write_local

    if pgbr.runner is None:
        write_local(pgbr.cfg, server.pitr.os_user)
        ensure_repo_dir(server)
        return
    result = pgbr.runner.run(write_command(pgbr.cfg), timeout=60)
    if not result.ok:
        raise RuntimeError(
            f"无法写入 pgBackRest 配置 cannot write {pgbr.cfg.path} on {server.host}: "
            f"{result.stderr.strip()[:300]}"
        )


def _where(inv: Any, server_id: str) -> str:
    for i, system in enumerate(inv.systems):
        for j, srv in enumerate(system.servers):
            if srv.id == server_id:
                return f"systems[{i}].servers[{j}]."
    return ""


def select_servers(wanted: list[str] | None) -> list[str]:
    from hisops.airflow.backup_tasks import select

    ids = select(
        pitr_server_ids(runtime.inventory()), wanted, "配置了 pitr 的服务器 servers with pitr"
    )
    log.info("本次物理备份 servers: %s", ", ".join(ids) or "none (no server has a pitr: block)")
    return ids


def prepare_task(server_id: str, context: dict) -> dict[str, Any]:
    """Write the pgBackRest config, create/check the stanza, verify archiving (never edits the server)."""
    from hisops.pitr.preflight import preflight

    set_label(context, server_id)
    inv = runtime.inventory()
    system, server = inv.locate_server(server_id)
    pgbr = runtime.pgbackrest_for(server)
    write_config(server, pgbr)
    result = preflight(server, runtime.dsn_for(server), pgbr, where=_where(inv, server_id))
    runtime.catalog().add_audit_event(
        actor=run_info(context).actor,
        action="pitr_preflight",
        target=server_id,
        result="success" if result.ok else "failure",
        details={"problems": list(result.problems)},
        **run_info(context).audit_fields(),
    )
    result.raise_for_problems()
    return {"server_id": server_id, "system_id": system.id, "config": str(pgbr.cfg.path)}


def backup_task(prepared: dict[str, Any], choice: str, context: dict) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from hisops.pitr.schedule import asset_uri, choose_type
    from hisops.pitr.service import backup_server

    set_label(context, prepared["server_id"])
    run, inv = run_info(context), runtime.inventory()
    _, server = inv.locate_server(prepared["server_id"])
    kind = choose_type(
        choice, server.pitr.schedule, run.logical_date, ZoneInfo(inv.timezone), run.is_scheduled
    )
    if kind is None:
        from airflow.exceptions import AirflowSkipException

        raise AirflowSkipException(
            f"{server.id}: 此时无计划的备份 no backup type due at {run.logical_date}"
        )
    outcome = backup_server(
        runtime.catalog(),
        server,
        prepared["system_id"],
        runtime.pgbackrest_for(server),
        kind,
        run,
        channels=runtime.channels(),
    ).as_dict()
    from airflow.sdk import Asset

    extra = {k: outcome[k] for k in ("backup_id", "kind", "label", "type", "size_bytes")}
    context["outlet_events"][pitr_alias()].add(Asset(asset_uri(server.id)), extra=extra)
    return outcome
