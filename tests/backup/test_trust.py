"""Catalog and storage agree: vanished backups become missing, retention and reconcile follow
storage."""

from __future__ import annotations

import shutil
import textwrap
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hisops.backup import reconcile, retention, trust
from hisops.backup.dump import DumpSpec, backup_database
from hisops.inventory.loader import load_inventory
from hisops.notify.channels import Channel, build_apprise_url

UTC8 = ZoneInfo("Asia/Shanghai")


def _inventory(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases:
              - id: d1
                conn_id: t_db
                backup: {{keep_daily: 1, keep_weekly: 0, keep_monthly: 0}}
        """)
    )
    return load_inventory(path)


@pytest.fixture
def three_verified(pg, his_db, catalog, tmp_path):
    """Three real backups of d1, all verified (oldest first)."""
    spec = DumpSpec(
        database_id="d1",
        system_id="emr",
        dsn=pg.dsn(his_db),
        storage=tmp_path / "backups",
        jobs=2,
        compress=1,
        actor="test",
    )
    outcomes = [backup_database(spec, catalog) for _ in range(3)]
    for o in outcomes:
        catalog.mark_backup_verified(o.backup_id)
    return outcomes


def _channel(mailbox) -> Channel:
    url = build_apprise_url(
        "email",
        host=mailbox.host,
        port=mailbox.port,
        to=["supervisor@hospital.example"],
        extra={"from_email": "hisops@hospital.example", "disable_tls": True, "disable_ssl": True},
    )
    return Channel("主管", "email", url)


def test_vanished_newest_becomes_missing_with_incident_audit_and_mail(
    three_verified, catalog, tmp_path, mailbox
):
    inv = _inventory(tmp_path)
    old, middle, newest = three_verified
    shutil.rmtree(newest.path)

    found = trust.last_restorable(catalog, inv, "d1", channels=[_channel(mailbox)], actor="test")

    assert found.id == middle.backup_id
    gone = catalog.get_backup(newest.backup_id)
    assert gone.state == "missing" and "gone" in gone.error
    assert catalog.latest_verified_backup("d1").id == middle.backup_id  # never again last verified
    (incident,) = catalog.open_incidents()
    assert (incident.check_id, incident.target_id, incident.severity) == (
        "backup.storage",
        "d1",
        "critical",
    )
    assert f"#{newest.backup_id}" in incident.title_zh
    event = next(e for e in catalog.audit_events() if e.action == trust.MARK_ACTION)
    assert (
        event.details["backup_id"] == newest.backup_id
        and event.details["previous_state"] == "verified"
    )
    (mail,) = mailbox.messages
    assert f"#{newest.backup_id}" in str(mail["subject"])
    # asked again: nothing recorded twice, same answer
    assert trust.last_restorable(catalog, inv, "d1").id == middle.backup_id
    assert len([e for e in catalog.audit_events() if e.action == trust.MARK_ACTION]) == 1


def test_removed_file_and_changed_size_are_caught_cheaply(three_verified, catalog, tmp_path):
    inv = _inventory(tmp_path)
    old, middle, newest = three_verified
    victim = next(p for p in (Path(newest.path) / "dump").iterdir() if p.suffix == ".gz")
    victim.unlink()
    with (Path(middle.path) / "globals" / "globals.sql").open("a") as fh:
        fh.write("-- appended\n")

    assert trust.last_restorable(catalog, inv, "d1").id == old.backup_id
    assert catalog.get_backup(newest.backup_id).state == "missing"
    assert victim.name in catalog.get_backup(newest.backup_id).error
    damaged = catalog.get_backup(middle.backup_id)
    assert damaged.state == "failed" and "size mismatch" in damaged.error


def test_max_age_answers_none_when_the_restorable_one_is_too_old(three_verified, catalog, tmp_path):
    inv = _inventory(tmp_path)
    newest = catalog.get_backup(three_verified[-1].backup_id)
    assert trust.last_restorable(catalog, inv, "d1", max_age=timedelta(hours=1)).id == newest.id
    later = newest.finished_at + timedelta(hours=2)
    assert trust.last_restorable(catalog, inv, "d1", max_age=timedelta(hours=1), now=later) is None


def test_retention_keeps_the_newest_restorable_when_the_newest_vanished(
    three_verified, catalog, tmp_path
):
    inv = _inventory(tmp_path)
    old, middle, newest = three_verified
    shutil.rmtree(newest.path)
    policy = retention.Policy(keep_daily=1, keep_weekly=0, keep_monthly=0)

    plan = retention.plan_checked(catalog, inv, "database", "d1", policy, UTC8, actor="test")

    decisions = {d.backup_id: d for d in plan.decisions}
    assert catalog.get_backup(newest.backup_id).state == "missing"
    assert not decisions[middle.backup_id].delete
    assert "last verified" in decisions[middle.backup_id].reason
    assert [d.backup_id for d in plan.deletions] == [old.backup_id]  # the vanished row stays listed
    assert decisions[newest.backup_id].state == "missing"


def test_reconcile_finds_both_ways_and_resolves_once_a_newer_backup_is_restorable(
    three_verified, catalog, tmp_path, pg, his_db
):
    inv = _inventory(tmp_path)
    old, middle, newest = three_verified
    shutil.rmtree(newest.path)
    orphan = Path(old.path).with_name(Path(old.path).name.rsplit("-", 1)[0] + "-999999")
    shutil.copytree(old.path, orphan)

    results = reconcile.reconcile(catalog, inv, actor="test")

    (d1,) = [r for r in results if r.target_id == "d1"]
    assert d1.vanished == [newest.backup_id] and d1.checked == 3
    assert len(d1.orphans) == 1 and str(orphan) in d1.orphans[0]
    checks = {i.check_id: i for i in catalog.open_incidents()}
    assert set(checks) == {"backup.storage", "backup.orphan"}
    assert reconcile.reconcile(catalog, inv, actor="test")[0].vanished == []  # recorded once

    spec = DumpSpec(
        database_id="d1",
        system_id="emr",
        dsn=pg.dsn(his_db),
        storage=tmp_path / "backups",
        jobs=2,
        compress=1,
        actor="test",
    )
    fresh = backup_database(spec, catalog)
    catalog.mark_backup_verified(fresh.backup_id)
    shutil.rmtree(orphan)
    reconcile.reconcile(catalog, inv, actor="test")

    assert catalog.open_incidents() == []
    resolved = catalog.get_incident(checks["backup.storage"].id)
    assert (
        f"#{fresh.backup_id}" in resolved.resolution_note
        and f"#{newest.backup_id}" in resolved.resolution_note
    )
    assert catalog.get_backup(newest.backup_id).state == "missing"  # stays listed as missing
