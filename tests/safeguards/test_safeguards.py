"""The maintenance gate: window (incl. midnight), fresh verified backup, approver rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hisops.inventory.models import MaintenanceWindow
from hisops.roles import OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN
from hisops.safeguards.approval import ApprovalRequest, auto_approval, check_approval
from hisops.safeguards.backup import check_fresh_backup
from hisops.safeguards.window import check_window, clock_for

SH = ZoneInfo("Asia/Shanghai")


def _at(hhmm: str, day: int = 2) -> datetime:
    return datetime.fromisoformat(f"2026-12-0{day}T{hhmm}:00").replace(tzinfo=SH)


@pytest.mark.parametrize(
    ("start", "end", "now", "inside", "closes"),
    [
        ("01:30", "05:30", "02:00", True, "05:30"),
        ("01:30", "05:30", "05:30", False, None),
        ("01:30", "05:30", "01:29", False, None),
        ("22:00", "02:00", "23:59", True, "02:00"),
        ("22:00", "02:00", "01:59", True, "02:00"),
        ("22:00", "02:00", "02:00", False, None),
    ],
)
def test_window_and_its_end(start, end, now, inside, closes):
    verdict = check_window(MaintenanceWindow(start=start, end=end), SH, _at(now))
    assert verdict.ok is inside
    if inside:
        clock = clock_for(verdict)
        assert clock.closes_at.astimezone(SH).strftime("%H:%M") == closes
        assert clock.may_start(_at(now)) and not clock.may_start(clock.closes_at)
    else:
        assert "outside the maintenance window" in verdict.reason_en


def _verified(catalog, path, finished_hours_ago: float) -> int:
    from tests.tune.conftest import verified_backup

    bid = verified_backup(catalog, "his_outpatient", path)
    with catalog.engine.begin() as conn:  # age it (the catalog stamps finished_at with now())
        from sqlalchemy import text

        conn.execute(
            text(
                "UPDATE hisops.backup SET finished_at = now() - make_interval(secs => :s) "
                "WHERE id = :i"
            ),
            {"s": finished_hours_ago * 3600, "i": bid},
        )
    return bid


def test_fresh_backup_needs_a_verified_young_backup_whose_files_exist(catalog, tmp_path):
    v = check_fresh_backup(catalog, None, "his_outpatient")
    assert not v.ok and "no verified backup" in v.reason_en
    _verified(catalog, tmp_path / "old", 30)
    v = check_fresh_backup(catalog, None, "his_outpatient")
    assert not v.ok and "30.0 h old" in v.reason_en
    gone = tmp_path / "gone"  # verified and young, but its files vanished
    gone_id = _verified(catalog, gone, 1)
    (gone / "manifest.json").unlink()
    assert not check_fresh_backup(catalog, None, "his_outpatient").ok
    assert catalog.get_backup(gone_id).state == "missing"  # recorded by hisops.backup.trust
    bid = _verified(catalog, tmp_path / "young", 2)
    v = check_fresh_backup(
        catalog, None, "his_outpatient", now=datetime.now(UTC) + timedelta(minutes=1)
    )
    assert v.ok and v.details["backup_id"] == bid


@pytest.mark.parametrize(
    ("requester", "approver", "roles", "approved", "ok", "why"),
    [
        ("admin", "sysadmin", {SYSTEM_ADMIN}, True, True, "approved by"),
        ("admin", "boss", {"Admin"}, True, True, "approved by"),
        ("sysadmin", "sysadmin", {SUPER_ADMIN}, True, False, "is the requester"),
        ("admin", "operator", {OPERATOR}, True, False, "below 系统管理员"),
        ("admin", "sysadmin", {SYSTEM_ADMIN}, False, False, "rejected"),
        ("admin", None, set(), True, False, "unknown"),
    ],
)
def test_approval_rules(requester, approver, roles, approved, ok, why):
    v = check_approval(ApprovalRequest(requester, approver, frozenset(roles), approved))
    assert v.ok is ok and why in v.reason_en


def test_auto_approval_only_for_pre_approved_kinds():
    assert auto_approval(["analyze", "vacuum_analyze"], ["analyze", "vacuum_analyze", "reindex"]).ok
    v = auto_approval(["analyze", "create_index"], ["analyze"])
    assert not v.ok and v.details["not_pre_approved"] == ["create_index"]
