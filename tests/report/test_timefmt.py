"""Times for people are in the inventory's time zone (item 10): the helper and its users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hisops.inspect import db_checks
from hisops.inspect.findings import Target
from hisops.inventory.thresholds import Thresholds
from hisops.report.timefmt import fmt, local, local_date, parse

MIDNIGHT_UTC = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)


def test_fmt_local_and_parse() -> None:
    assert fmt(MIDNIGHT_UTC, "Asia/Shanghai") == "2026-12-01 08:30"
    assert fmt(MIDNIGHT_UTC, "Europe/Berlin", seconds=True) == "2026-12-01 01:30:00"
    assert fmt("2026-11-30T23:59:00+00:00", "Asia/Shanghai") == "2026-12-01 07:59"
    assert fmt(datetime(2026, 12, 1, 0, 30), "Asia/Shanghai") == "2026-12-01 08:30"  # naive = UTC
    assert fmt(None, "Asia/Shanghai") == "—"
    assert local(MIDNIGHT_UTC, "Asia/Shanghai").utcoffset() == timedelta(hours=8)
    assert (
        local_date(datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "Asia/Shanghai").isoformat()
        == "2026-12-01"
    )
    assert parse("2026-12-01 00:30:00") == MIDNIGHT_UTC
    assert (
        fmt(MIDNIGHT_UTC, timezone(timedelta(hours=-5)), zone_name=True)
        == "2026-11-30 19:30 UTC-05:00"
    )


def test_finding_messages_use_the_inventory_zone() -> None:
    t = Target(
        "database",
        "his_db",
        "sys",
        Thresholds(),
        MIDNIGHT_UTC + timedelta(hours=3),
        "Asia/Shanghai",
    )
    backup = db_checks.check_backup_age(t, {}, {"last_verified_backup_at": MIDNIGHT_UTC})
    assert "2026-12-01 08:30" in backup.message_zh and "2026-12-01 08:30" in backup.message_en
    up = db_checks.check_uptime(
        t, {"uptime_s": 10800, "started_at": "2026-12-01T00:30:00+00:00"}, {}
    )
    assert "启动于 2026-12-01 08:30" in up.message_zh and "+00:00" not in up.message_en
