"""When a cleanup run may delete: dry_run auto/yes/no, run type and the maintenance window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hisops.cleanup.service import resolve_dry_run
from hisops.inventory.models import MaintenanceWindow
from hisops.runinfo import RunInfo

WINDOW = MaintenanceWindow(start="01:30", end="05:30")
SCHEDULED, MANUAL = (
    RunInfo("retention_cleanup", "s", "scheduled"),
    RunInfo("retention_cleanup", "m", "manual"),
)
IN_WINDOW = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)  # 02:30 Asia/Shanghai
CLINIC_HOURS = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)  # 10:30 Asia/Shanghai


@pytest.mark.parametrize(
    "choice,run,now,dry",
    [
        ("auto", SCHEDULED, IN_WINDOW, False),
        (
            "auto",
            SCHEDULED,
            CLINIC_HOURS,
            True,
        ),  # e.g. the catch-up run Airflow starts when unpaused
        ("auto", MANUAL, IN_WINDOW, True),
        ("yes", SCHEDULED, IN_WINDOW, True),
        ("no", MANUAL, CLINIC_HOURS, False),  # a person chose to clean now
    ],
)
def test_auto_deletes_only_on_schedule_inside_the_window(choice, run, now, dry):
    assert resolve_dry_run(choice, run, WINDOW, now) is dry


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="auto, yes or no"):
        resolve_dry_run("maybe", MANUAL)
