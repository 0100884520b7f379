"""Times for people (第七条 reports, mails, O&M centre texts): always in the inventory's time zone.

The catalog and the checks keep aware UTC datetimes; anything a person reads goes through
:func:`fmt` (or :func:`local` when a template needs the parts). A naive datetime is taken as
UTC (that is what PostgreSQL ``timestamptz`` values and our own ``now_utc()`` are). Strings in
ISO 8601 (e.g. ``pg_postmaster_start_time()`` serialised by ``json_build_object``) are
accepted too, so callers never print a raw ``2026-12-01T00:03:11.12+00:00``.

    >>> from datetime import datetime, UTC
    >>> fmt(datetime(2026, 12, 1, 0, 30, tzinfo=UTC), "Asia/Shanghai")
    '2026-12-01 08:30'
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Shanghai"
MINUTES = "%Y-%m-%d %H:%M"
SECONDS = "%Y-%m-%d %H:%M:%S"
NONE_TEXT = "—"

TimeLike = datetime | str | None
ZoneLike = str | tzinfo | None


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(tz: ZoneLike) -> tzinfo:
    """A tzinfo from an IANA name, a tzinfo, or None (the default zone, Asia/Shanghai)."""
    if tz is None:
        return _zone(DEFAULT_TZ)
    return _zone(tz) if isinstance(tz, str) else tz


def parse(value: TimeLike) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string (naive = UTC); None stays None."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local(value: TimeLike, tz: ZoneLike = None) -> datetime | None:
    """The moment in the given zone (None → None)."""
    moment = parse(value)
    return None if moment is None else moment.astimezone(zone(tz))


def fmt(
    value: TimeLike,
    tz: ZoneLike = None,
    *,
    seconds: bool = False,
    zone_name: bool = False,
    none: str = NONE_TEXT,
) -> str:
    """'2026-12-01 08:30' in the zone; ``seconds`` adds :SS, ``zone_name`` appends ' CST'/' +08'."""
    moment = local(value, tz)
    if moment is None:
        return none
    text = moment.strftime(SECONDS if seconds else MINUTES)
    return f"{text} {moment.tzname()}" if zone_name else text


def local_date(value: TimeLike, tz: ZoneLike = None) -> date | None:
    """The calendar day of the moment in the zone (the report's day)."""
    moment = local(value, tz)
    return None if moment is None else moment.date()
