"""The period a KPI report covers: a calendar month or any [start, end) in the inventory's zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
MAX_DAYS = 400  # an ad-hoc period longer than this is a typo, not a request


class PeriodError(ValueError):
    """A period parameter that cannot be understood (the message names the parameter)."""


@dataclass(frozen=True)
class Period:
    start: datetime  # aware, local midnight
    end: datetime  # aware, exclusive
    tz: str
    monthly: bool

    @property
    def label(self) -> str:
        """'2026-11' for a month, '2026-11-01 – 2026-11-15' for an ad-hoc period (end inclusive)."""
        if self.monthly:
            return f"{self.first_day:%Y-%m}"
        return f"{self.first_day:%Y-%m-%d} – {self.last_day:%Y-%m-%d}"

    @property
    def first_day(self) -> date:
        return self.start.astimezone(ZoneInfo(self.tz)).date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(microseconds=1)).astimezone(ZoneInfo(self.tz)).date()

    def days(self) -> list[date]:
        first, last = self.first_day, self.last_day
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    @property
    def trend_bucket(self) -> str:
        """Restore-time trend granularity: daily for a month or less, weekly up
        to a quarter, else monthly."""
        n = len(self.days())
        return "day" if n <= 31 else ("week" if n <= 92 else "month")


def _midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz))


def month(year: int, month_no: int, tz: str) -> Period:
    first = date(year, month_no, 1)
    following = date(year + (month_no == 12), month_no % 12 + 1, 1)
    return Period(_midnight(first, tz), _midnight(following, tz), tz, monthly=True)


def previous_month(moment: datetime, tz: str) -> Period:
    """The calendar month before the one ``moment`` falls in (local):
    the scheduled report's period."""
    local = moment.astimezone(ZoneInfo(tz)).date()
    last_of_previous = local.replace(day=1) - timedelta(days=1)
    return month(last_of_previous.year, last_of_previous.month, tz)


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def parse(
    month_text: str | None, start_text: str | None, end_text: str | None, tz: str, now: datetime
) -> Period:
    """From the DAG's Params: ``month`` (YYYY-MM), or ``start``/``end`` (YYYY-MM-DD, end inclusive);
    nothing → the previous calendar month (relative to ``now``)."""
    month_text, start_text, end_text = (
        v.strip() if v else None for v in (month_text, start_text, end_text)
    )
    if month_text and (start_text or end_text):
        raise PeriodError("give either month or start/end, not both")
    if month_text:
        found = MONTH_RE.fullmatch(month_text)
        if not found:
            raise PeriodError(f"month: {month_text!r} is not a month (YYYY-MM, e.g. 2026-11)")
        return month(int(found[1]), int(found[2]), tz)
    if bool(start_text) != bool(end_text):
        raise PeriodError("start and end go together (both YYYY-MM-DD, end inclusive)")
    if not start_text:
        return previous_month(now, tz)
    first, last = _day(start_text, "start"), _day(end_text or "", "end")
    if last < first:
        raise PeriodError(f"end {last} is before start {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError(
            f"period of {(last - first).days + 1} days is longer than {MAX_DAYS} days"
        )
    return Period(_midnight(first, tz), _midnight(last + timedelta(days=1), tz), tz, monthly=False)


def scheduled_days(cron: str, period: Period) -> int:
    """How many local days of the period the cron expression fires on (the expected daily runs)."""
    from croniter import croniter

    count = 0
    for day in period.days():
        begin = _midnight(day, period.tz)
        following = _midnight(day + timedelta(days=1), period.tz)
        fire = croniter(cron, begin - timedelta(microseconds=1)).get_next(datetime)
        count += begin <= fire < following
    return count
