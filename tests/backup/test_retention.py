"""GFS retention: selection (pure, computed expectations) and the safety rules, then apply() on
disk + catalog."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hisops.backup.retention import Candidate, Plan, Policy, apply, plan, safe_backup_dir

TZ = ZoneInfo("Asia/Shanghai")


def _at(day: date, hour: int = 1) -> datetime:
    """01:00 Shanghai on ``day`` (17:00 UTC the day before: day boundaries must use local time)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ).astimezone(UTC)


def _nightly(days: int, end: date, state: str = "verified") -> list[Candidate]:
    return [Candidate(i + 1, state, _at(end - timedelta(days=days - 1 - i))) for i in range(days)]


def _expected_keep(cands: list[Candidate], p: Policy) -> set[int]:
    """Independent GFS: one backup per night, so the newest of a period is its latest day."""
    by_day = {c.taken_at.astimezone(TZ).date(): c.id for c in cands}
    days = sorted(by_day, reverse=True)
    keep = {by_day[d] for d in days[: p.keep_daily]}
    weeks: dict[tuple[int, int], date] = {}
    months: dict[tuple[int, int], date] = {}
    for d in days:  # newest first: setdefault keeps each period's newest day
        weeks.setdefault(d.isocalendar()[:2], d)
        months.setdefault((d.year, d.month), d)
    keep |= {by_day[d] for d in sorted(weeks.values(), reverse=True)[: p.keep_weekly]}
    keep |= {by_day[d] for d in sorted(months.values(), reverse=True)[: p.keep_monthly]}
    return keep


@pytest.mark.parametrize(
    "policy", [Policy(7, 4, 6), Policy(14, 8, 12), Policy(1, 0, 0), Policy(3, 2, 1)]
)
@pytest.mark.parametrize("end", [date(2026, 3, 31), date(2026, 1, 4), date(2026, 6, 15)])
def test_gfs_selection_matches_an_independent_computation(policy, end):
    cands = _nightly(400, end)
    result = plan("db", cands, policy, TZ)
    kept = {d.backup_id for d in result.kept}
    assert kept == _expected_keep(cands, policy)
    assert {d.backup_id for d in result.deletions} == {c.id for c in cands} - kept


def test_hand_checked_example():
    # nightly backups 2026-01-01 .. 2026-03-15 (74 nights), keep 3 daily, 2 weekly, 2 monthly
    cands = _nightly(74, date(2026, 3, 15))
    kept = {
        d.taken_at.astimezone(TZ).date().isoformat()
        for d in plan("db", cands, Policy(3, 2, 2), TZ).kept
    }
    # daily: 15, 14, 13 Mar; weekly: Sun 15 Mar (W11), Sun 8 Mar (W10); monthly: 15 Mar, 28 Feb
    assert kept == {"2026-03-15", "2026-03-14", "2026-03-13", "2026-03-08", "2026-02-28"}


def test_local_day_boundaries():
    # 23:30 and 00:30 Shanghai are different days even though both are the same UTC day
    late = Candidate(1, "verified", datetime(2026, 3, 1, 23, 30, tzinfo=TZ).astimezone(UTC))
    early = Candidate(2, "verified", datetime(2026, 3, 2, 0, 30, tzinfo=TZ).astimezone(UTC))
    assert late.taken_at.date() == early.taken_at.date()
    assert {d.backup_id for d in plan("db", [late, early], Policy(2, 0, 0), TZ).kept} == {1, 2}


def test_one_verified_backup_is_always_kept():
    old = Candidate(1, "verified", _at(date(2020, 1, 1)))
    result = plan("db", [old], Policy(1, 0, 0), TZ)
    assert result.deletions == [] and "last verified" in result.kept[0].reason


def test_newer_failed_backups_never_displace_the_older_verified_one():
    cands = [Candidate(1, "verified", _at(date(2026, 1, 1)))]
    cands += [Candidate(i, "failed", _at(date(2026, 1, i)), path=f"/x/{i}") for i in range(2, 12)]
    result = plan("db", cands, Policy(1, 0, 0), TZ)
    assert 1 in {d.backup_id for d in result.kept}
    assert result.deletions == []  # no newer verified backup → even the failed ones stay


def test_unverified_and_running_backups_newer_than_last_verified_are_kept():
    cands = [
        Candidate(1, "verified", _at(date(2026, 1, 1))),
        Candidate(2, "verified", _at(date(2026, 1, 2))),
        Candidate(3, "completed", _at(date(2026, 1, 3))),
        Candidate(4, "completed", _at(date(2026, 1, 4))),
        Candidate(5, "running", _at(date(2026, 1, 5))),
    ]
    result = plan("db", cands, Policy(1, 0, 0), TZ)
    assert {d.backup_id for d in result.deletions} == {1}
    reasons = {d.backup_id: d.reason for d in result.kept}
    assert "last verified" in reasons[2] and "running" in reasons[5]
    assert "no newer verified" in reasons[3]


def test_verified_preferred_within_a_period_and_failed_deleted_once_superseded():
    day = date(2026, 2, 10)
    cands = [
        Candidate(1, "verified", _at(day, 1)),
        Candidate(2, "completed", _at(day, 3)),
        Candidate(3, "failed", _at(day - timedelta(days=1)), path="/x"),
        Candidate(4, "verified", _at(day - timedelta(days=1))),
    ]
    result = plan("db", cands, Policy(1, 0, 0), TZ)
    kept = {d.backup_id: d.reason for d in result.kept}
    assert set(kept) == {1, 2}  # 1: daily slot of its day + last verified; 2: no newer verified
    assert {d.backup_id for d in result.deletions} == {3, 4}
    assert "failed backup, newer verified backup #1" in next(
        d.reason for d in result.deletions if d.backup_id == 3
    )


def test_safe_backup_dir_refuses_anything_else(tmp_path):
    root = tmp_path / "his_emr"
    (root / "20260101T010000Z-7").mkdir(parents=True)
    assert safe_backup_dir(str(root / "20260101T010000Z-7"), root, 7) == root / "20260101T010000Z-7"
    for bad in (
        str(root / "20260101T010000Z-8"),
        str(tmp_path / "20260101T010000Z-7"),
        str(root),
        str(root / "20260101T010000Z-7" / ".." / ".." / "x"),
    ):
        with pytest.raises(ValueError, match="refusing"):
            safe_backup_dir(bad, root, 7)


# --- apply() against the real catalog ---------------------------------------------------------


def _register(repo, root, day: date, state: str) -> tuple[int, str]:
    bid = repo.register_backup_start("his_emr", "emr", "database", None)
    path = root / f"{_at(day):%Y%m%dT%H%M%SZ}-{bid}"
    (path / "dump").mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    repo.complete_backup(bid, {}, "0" * 64, 1, str(path))
    if state == "verified":
        repo.mark_backup_verified(bid)
    elif state == "failed":
        repo.mark_backup_verification_failed(bid, "drill failed")
    return bid, str(path)


def _candidates(repo):
    from hisops.backup.retention import candidates_from

    records = repo.backups_for("his_emr")
    return candidates_from([r for r in records if r.state != "failed" or r.path], "database")


def test_apply_deletes_records_and_audits(catalog, tmp_path):
    root = tmp_path / "his_emr"
    old, old_path = _register(catalog, root, date(2026, 1, 1), "verified")
    new, _ = _register(catalog, root, date(2026, 1, 2), "verified")
    cands = [c for c in _candidates(catalog)]
    cands = [
        Candidate(c.id, c.state, _at(date(2026, 1, 1 if c.id == old else 2)), c.path) for c in cands
    ]
    p = plan("his_emr", cands, Policy(1, 0, 0), TZ)
    assert [d.backup_id for d in p.deletions] == [old]
    done = apply(p, root, catalog, actor="tester", run_id="r1")
    assert [d.backup_id for d in done] == [old] and done[0].files_existed
    assert not (root / old_path.rsplit("/", 1)[-1]).exists()
    record = catalog.get_backup(old)
    assert record.deleted_at is not None and "newer verified backup" in record.deleted_reason
    assert catalog.latest_verified_backup("his_emr").id == new
    event = catalog.audit_events(limit=1)[0]
    assert (event.action, event.actor, event.details["backup_id"]) == (
        "backup_delete",
        "tester",
        old,
    )
    assert apply(p, root, catalog, actor="tester") == []  # second time: already recorded


def test_apply_keeps_older_verified_when_newer_failed(catalog, tmp_path):
    root = tmp_path / "his_emr"
    good, good_path = _register(catalog, root, date(2026, 1, 1), "verified")
    _register(catalog, root, date(2026, 1, 2), "failed")
    p = plan("his_emr", _candidates(catalog), Policy(1, 0, 0), TZ)
    assert apply(p, root, catalog, actor="tester") == []
    assert catalog.latest_verified_backup("his_emr").id == good
    assert (root / good_path.rsplit("/", 1)[-1]).is_dir()


def test_apply_never_deletes_outside_the_root(catalog, tmp_path):
    root = tmp_path / "his_emr"
    victim = tmp_path / "elsewhere" / "20260101T010000Z-1"
    victim.mkdir(parents=True)
    p = Plan("his_emr", [])
    from hisops.backup.retention import Decision

    p.decisions.append(Decision(1, True, ("test",), "verified", _at(date(2026, 1, 1)), str(victim)))
    with pytest.raises(ValueError, match="refusing"):
        apply(p, root, catalog, actor="tester")
    assert victim.is_dir()


# --- which targets, and whether a run deletes (moved out of the Airflow adapter) ----------------


def test_targets_are_every_database_and_every_host_with_backup_paths(tmp_path):
    from hisops.backup.retention import targets
    from hisops.inventory.loader import load_inventory

    repo_root = Path(__file__).resolve().parents[2]
    inv = load_inventory(repo_root / "inventory" / "hospital.example.yaml")
    found = {t.key: t for t in targets(inv, tmp_path)}
    dbs = [d for _, d in inv.all_databases()]
    hosts = [h for _, h in inv.all_hosts() if h.backup_paths]
    assert list(found) == [f"database:{d.id}" for d in dbs] + [f"files:{h.id}" for h in hosts]
    for db in dbs:
        t = found[f"database:{db.id}"]
        b = db.backup
        assert t.policy == Policy(b.keep_daily, b.keep_weekly, b.keep_monthly)
        assert t.root.parent == tmp_path
    r = inv.retention
    for host in hosts:
        t = found[f"files:{host.id}"]
        assert t.policy == Policy(r.keep_daily, r.keep_weekly, r.keep_monthly)
        assert t.root.is_relative_to(tmp_path) and t.root != tmp_path / host.id


@pytest.mark.parametrize(
    ("choice", "run_type", "dry"),
    [
        ("auto", "scheduled", False),
        ("auto", "DagRunType.SCHEDULED", False),
        ("auto", "manual", True),
        ("auto", "asset_triggered", True),
        ("yes", "scheduled", True),
        ("no", "manual", False),
    ],
)
def test_auto_dry_run_deletes_only_on_scheduled_runs(choice, run_type, dry):
    from hisops.backup.retention import resolve_dry_run

    assert resolve_dry_run(choice, run_type) is dry


def test_an_unknown_dry_run_choice_is_refused():
    from hisops.backup.retention import resolve_dry_run

    with pytest.raises(ValueError, match="dry_run must be one of"):
        resolve_dry_run("maybe", "scheduled")
