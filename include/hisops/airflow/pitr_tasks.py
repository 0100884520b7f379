"""Adapters of pitr_backup (物理备份): context → plain arguments → one ``hisops.pitr.service`` call.

Import-cheap: the DAG file imports this at parse time; drivers and the domain are imported inside.
Assets: every completed physical backup emits ``Asset("hisops://pitr/<server_id>")`` through the
outlet alias ``hisops-pitr`` (extra ``{backup_id, kind: physical, label, type}``);
backup_verification is scheduled on them and drills the new backup.
"""

from __future__ import annotations

import logging
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info, set_label
from hisops.pitr.schedule import (  # noqa: F401 - the DAG's Param enum and server list
    TYPE_CHOICES,
    pitr_server_ids,
)

log = logging.getLogger(__name__)
PITR_ALIAS = "hisops-pitr"


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


def select_servers(wanted: list[str] | None) -> list[str]:
    from hisops.pitr.service import server_ids

    return server_ids(runtime.inventory(), wanted)


def prepare_task(server_id: str, context: dict) -> dict[str, Any]:
    """Write the pgBackRest config, create/check the stanza, verify archiving (never edits the
    server)."""
    from hisops.pitr.service import prepare_server

    set_label(context, server_id)
    inv = runtime.inventory()
    _, server = inv.locate_server(server_id)
    return prepare_server(
        runtime.catalog(),
        inv,
        server_id,
        runtime.pgbackrest_for(server),
        runtime.dsn_for(server),
        run_info(context),
    )


def backup_task(prepared: dict[str, Any], choice: str, context: dict) -> dict[str, Any]:
    from hisops.pitr.schedule import asset_uri
    from hisops.pitr.service import NothingDue, run_backup

    set_label(context, prepared["server_id"])
    try:
        outcome = run_backup(
            runtime.catalog(),
            runtime.inventory(),
            prepared,
            choice,
            runtime.pgbackrest_for,
            run_info(context),
            channels=runtime.channels(),
        )
    except NothingDue as due:
        from airflow.exceptions import AirflowSkipException

        raise AirflowSkipException(str(due)) from None
    from airflow.sdk import Asset

    extra = {k: outcome[k] for k in ("backup_id", "kind", "label", "type", "size_bytes")}
    context["outlet_events"][pitr_alias()].add(Asset(asset_uri(prepared["server_id"])), extra=extra)
    return outcome
