"""Run semantics (item 2): on-time scheduled runs are current; only past days are historical."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hisops.inspect.schedule import semantics
from hisops.runinfo import RunInfo

TZ = "Asia/Shanghai"
NOW = datetime(
    2026, 12, 1, 23, 1, tzinfo=UTC
)  # 07:01 on 12-02 in Shanghai, just after the 07:00 run was due
DUE = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)


def run(run_type: str, logical: datetime | None, after: datetime | None) -> RunInfo:
    return RunInfo(
        "daily_inspection",
        f"{run_type}__x",
        run_type=run_type,
        logical_date=logical,
        run_after=after,
    )


def test_on_time_scheduled_run_is_current_although_its_logical_date_is_yesterday() -> None:
    s = semantics(run("scheduled", DUE - timedelta(days=1), DUE), NOW, TZ)
    assert not s.historical and s.fold_incidents and s.advance_offsets and s.report_for is None


def test_a_few_hours_late_on_the_same_day_is_still_current() -> None:
    assert not semantics(
        run("scheduled", DUE - timedelta(days=1), DUE), DUE + timedelta(hours=5), TZ
    ).historical


def test_backfill_and_catch_up_of_old_dates_are_historical() -> None:
    past = DUE - timedelta(days=3)
    back = semantics(run("backfill", past - timedelta(days=1), past), NOW, TZ)
    assert (
        back.historical
        and not back.fold_incidents
        and not back.advance_offsets
        and back.report_for == past
    )
    caught_up = semantics(run("scheduled", past - timedelta(days=1), past), NOW, TZ)
    assert caught_up.historical and caught_up.report_for == past
    by_hand = semantics(run("manual", past, NOW), NOW, TZ)
    assert by_hand.historical and by_hand.report_for == past


def test_ad_hoc_manual_run_is_current() -> None:
    assert not semantics(run("manual", NOW, NOW), NOW, TZ).historical
    assert not semantics(run("manual", None, None), NOW, TZ).historical
