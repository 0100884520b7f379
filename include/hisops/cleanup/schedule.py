"""When retention cleanup runs: inside the inventory's maintenance window
(import-cheap: DAG files use it)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hisops.inventory.models import MaintenanceWindow

OFFSET_MINUTES = 30  # after the window opens: night backups and their drills have a head start


def cron_in_window(window: MaintenanceWindow, offset_minutes: int = OFFSET_MINUTES) -> str:
    """A daily cron expression: window start + offset when that is still
    inside the window, else the start."""
    start = time.fromisoformat(window.start)
    moment = (
        datetime.combine(datetime(2000, 1, 1), start) + timedelta(minutes=offset_minutes)
    ).time()
    chosen = moment if window.contains(moment) else start
    return f"{chosen.minute} {chosen.hour} * * *"
