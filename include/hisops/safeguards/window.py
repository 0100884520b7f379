"""维护窗口 Maintenance window: may a step start now, and when does the window close?

The window is in the inventory's time zone and may cross midnight (22:00-02:00). A run checks
:func:`check_window` before it starts and asks :meth:`WindowClock.may_start` before every step:
steps are never started after the window's end (a running step is not interrupted; each step
has its own statement_timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from hisops.safeguards.verdict import Verdict

if TYPE_CHECKING:
    from hisops.inventory.models import MaintenanceWindow

SAFEGUARD = "maintenance_window"


def window_bounds(
    window: MaintenanceWindow, moment: datetime, tz: ZoneInfo
) -> tuple[datetime, datetime]:
    """The window occurrence that contains ``moment``, else the next one: (opens, closes), aware."""
    local = moment.astimezone(tz)
    start, end = time.fromisoformat(window.start), time.fromisoformat(window.end)
    for day_offset in (-1, 0, 1):
        day = (local + timedelta(days=day_offset)).date()
        opens = datetime.combine(day, start, tz)
        closes = datetime.combine(day + timedelta(days=1) if end <= start else day, end, tz)
        if local < closes:
            return opens, closes
    raise AssertionError("unreachable: a window always recurs within two days")


@dataclass(frozen=True)
class WindowClock:
    """When the window closes; ``may_start`` is False from that moment on."""

    closes_at: datetime

    def may_start(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.closes_at

    def remaining(self, now: datetime | None = None) -> timedelta:
        return self.closes_at - (now or datetime.now(UTC))


def check_window(window: MaintenanceWindow, tz: ZoneInfo, now: datetime | None = None) -> Verdict:
    """Inside the window now? details: opens/closes (local ISO text)
    for the message and the clock."""
    now = now or datetime.now(UTC)
    opens, closes = window_bounds(window, now, tz)
    inside = opens <= now.astimezone(tz) < closes
    details = {
        "opens": opens.isoformat(),
        "closes": closes.isoformat(),
        "window": f"{window.start}-{window.end} {tz.key}",
    }
    if inside:
        return Verdict(
            SAFEGUARD,
            True,
            f"在维护窗口内，{closes:%H:%M} 结束",
            f"inside the maintenance window until {closes:%H:%M}",
            details,
        )
    return Verdict(
        SAFEGUARD,
        False,
        f"不在维护窗口 {window.start}-{window.end}（{tz.key}）内，下次 {opens:%m-%d %H:%M} 开始",
        f"outside the maintenance window {window.start}-{window.end} ({tz.key}); "
        f"next opens {opens:%m-%d %H:%M}",
        details,
    )


def clock_for(verdict: Verdict) -> WindowClock:
    """The clock of a passed window check."""
    return WindowClock(datetime.fromisoformat(verdict.details["closes"]))
