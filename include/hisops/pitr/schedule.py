"""Which backup type is due: full, diff or incr, from the server's ``pitr.schedule`` crons."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hisops.inventory.models import Inventory, PitrSchedule

STRENGTH = (
    "full",
    "diff",
    "incr",
)  # strongest first: a time matching several crons takes the strongest
ASSET_PREFIX = "hisops://pitr/"
TYPE_CHOICES = ("auto", *STRENGTH)  # the trigger form's choice: auto = as the schedule says


def pitr_server_ids(inventory: Inventory) -> list[str]:
    """The inventory's servers with a pitr: block (parse time too: no I/O)."""
    return [srv.id for _, srv in inventory.all_servers() if srv.pitr]


def asset_uri(server_id: str) -> str:
    """The Airflow Asset updated when a physical backup of ``server_id`` completes."""
    return f"{ASSET_PREFIX}{server_id}"


def crons(schedule: PitrSchedule) -> dict[str, str]:
    return {t: c for t in STRENGTH if (c := getattr(schedule, t))}


def due_type(schedule: PitrSchedule, when: datetime, tz: tzinfo) -> str | None:
    """The strongest type whose cron fires at ``when`` (minute precision, inventory time zone)."""
    from croniter import croniter

    local = when.astimezone(tz).replace(second=0, microsecond=0)
    for kind, cron in crons(schedule).items():
        if croniter.match(cron, local):
            return kind
    return None


def choose_type(
    choice: str, schedule: PitrSchedule, when: datetime | None, tz: tzinfo, scheduled: bool
) -> str | None:
    """The form's choice (full/diff/incr), else for a scheduled run the type due at its logical
    time (None: nothing due for this server), else ``incr`` (pgBackRest takes a full when none
    exists)."""
    if choice in STRENGTH:
        return choice
    if choice != "auto":
        raise ValueError(f"type must be auto, full, diff or incr, not {choice!r}")
    if scheduled and when is not None:
        return due_type(schedule, when, tz)
    return "incr"
