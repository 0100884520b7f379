"""The drill decisions of hisops.verify.plan / verify.record (moved out of the Airflow adapter)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hisops.catalog.records import BackupRecord
from hisops.inventory.loader import load_inventory
from hisops.runinfo import RunInfo
from hisops.verify import plan, record, scratch
from hisops.verify.drill import worse_fault

REPO = Path(__file__).resolve().parents[2]
RUN = RunInfo(dag_id="backup_verification", run_id="manual__t", triggering_user="alice")


@pytest.fixture(scope="module")
def inv():
    return load_inventory(REPO / "inventory" / "hospital.example.yaml")


def _record(**kw) -> BackupRecord:
    fields = {
        "id": 5,
        "database_id": "his_emr",
        "system_id": "emr",
        "kind": "database",
        "state": "completed",
        "path": "/backups/his_emr/20260101T010000Z-5",
        "started_at": datetime(2026, 1, 1, 1, tzinfo=UTC),
        "finished_at": None,
        "size_bytes": 1,
        "manifest": {},
        "manifest_sha256": "a" * 64,
        "error": None,
        "dag_run_id": None,
        "deleted_at": None,
        "deleted_reason": None,
    }
    return BackupRecord(**{**fields, **kw})


def _result(ok: bool, fault: str = "none", failures: list[str] | None = None) -> dict:
    return {
        "backup_id": 5,
        "database_id": "his_emr",
        "system_id": "emr",
        "ok": ok,
        "fault": fault,
        "failures": failures or [],
        "evidence_path": "/reports/verification/his_emr/x/index.html",
    }


# --- plan ---------------------------------------------------------------------------------------


def test_event_ids_are_drilled_kinds_each_once():
    extras = [
        {"backup_id": 7, "kind": "database"},
        {"backup_id": 7, "kind": "database"},
        {"backup_id": 9, "kind": "files"},
        None,
        {"backup_id": "8"},  # not an id
        {"backup_id": 10, "kind": "physical"},
        {"backup_id": 11},
    ]
    assert plan.backup_ids_from_events(extras) == [7, 10, 11]


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"kind": "files"}, "is a file backup"),
        ({"state": "failed"}, "is failed; only completed or verified backups are drilled"),
        ({"state": "running"}, "is running"),
        (
            {"deleted_at": datetime(2026, 1, 2, tzinfo=UTC), "deleted_reason": "gfs"},
            "was deleted by retention (gfs)",
        ),
        ({"database_id": "gone_db"}, "gone_db 已不在清单中 is no longer in the inventory"),
    ],
)
def test_unusable_backups_say_why(inv, kw, says):
    assert says in plan.unusable_reason(_record(**kw), 5, inv)


def test_usable_backups_and_a_missing_one(inv):
    assert plan.unusable_reason(_record(), 5, inv) is None
    assert plan.unusable_reason(_record(state="verified"), 5, inv) is None
    assert plan.unusable_reason(_record(kind="physical", database_id="pg-main"), 5, inv) is None
    assert plan.unusable_reason(None, 12, inv) == "备份 #12 不存在 backup #12 does not exist"


def test_jobs_name_their_scratch_database_and_depth(inv):
    job = plan.drill_job(_record(), inv, mode=None, pitr_target=None)
    assert (job["database_id"], job["backup_id"], job["mode"]) == ("his_emr", 5, "fast")
    assert job["backup_dir"] == _record().path and job["manifest_sha256"] == "a" * 64
    assert scratch.is_scratch_name(job["scratch_db"]) and "_his_emr_5_" in job["scratch_db"]
    physical = plan.drill_job(
        _record(kind="physical", database_id="pg-main", manifest={"label": "L1"}),
        inv,
        mode="deep",
        pitr_target="latest",
    )
    assert physical == {
        "backup_id": 5,
        "database_id": "pg-main",
        "system_id": physical["system_id"],
        "kind": "physical",
        "label": "L1",
        "scratch_db": "",
        "mode": "deep",
        "pitr_target": "latest",
    }


def _completed(repo, target: str, kind: str = "database") -> int:
    bid = repo.register_backup_start(target, "emr", kind, None)
    repo.complete_backup(bid, {}, "0" * 64, 1, f"/nowhere/{target}/{bid}")
    return bid


def test_pending_backups_are_every_undrilled_one_oldest_first_physical_too(catalog, inv):
    a, b = _completed(catalog, "his_emr"), _completed(catalog, "his_emr")
    drilled = _completed(catalog, "his_emr")
    catalog.mark_backup_verified(drilled)
    p1, p2 = _completed(catalog, "pg-main", "physical"), _completed(catalog, "pg-main", "physical")
    assert p1 < p2
    assert plan.pending_backup_ids(catalog, inv) == [a, b, p1, p2]


def test_an_unusable_chosen_backup_is_an_error_an_unusable_pending_one_is_skipped(catalog, inv):
    bid = _completed(catalog, "not_in_inventory")
    with pytest.raises(ValueError, match="is no longer in the inventory"):
        plan.plan_drills(catalog, inv, RUN, backup_id=bid)
    extras = [{"backup_id": bid}]
    assert plan.plan_drills(catalog, inv, RUN, backup_id=None, event_extras=extras) == []
    assert catalog.get_backup(bid).state == "completed"  # skipped, not recorded as anything


def test_a_vanished_backup_is_recorded_at_planning_and_its_job_says_so(catalog, inv):
    bid = _completed(catalog, "his_emr")
    (job,) = plan.plan_drills(catalog, inv, RUN, backup_id=bid)
    assert job["vanished"].startswith("missing: ")
    assert catalog.get_backup(bid).state == "missing"
    event = next(e for e in catalog.audit_events() if e.action == "backup_mark_missing")
    assert (event.actor, event.run_id) == ("alice", "manual__t")


# --- record -------------------------------------------------------------------------------------


def test_whose_fault_decides_the_severity():
    assert worse_fault("none", "configuration") == "configuration"
    assert worse_fault("backup", "infrastructure") == "backup"
    assert worse_fault("configuration", "infrastructure") == "infrastructure"
    assert record.finding(_result(False, "backup", ["checksum mismatch: x.gz"])).severity == (
        "critical"
    )
    for fault in ("infrastructure", "configuration"):
        assert record.finding(_result(False, fault, ["no key"])).severity == "check_error"
        assert record.alert_severity(fault) == "warn"
    assert record.alert_severity("backup") == "critical"


def test_findings_name_the_backup_the_first_problem_and_failed_ones():
    bad = record.finding(_result(False, "backup", ["checksum mismatch: x.gz", "second"]))
    assert bad.check_id == "backup.verification" and bad.target_id == "his_emr"
    assert "#5" in bad.message_zh and "checksum mismatch: x.gz" in bad.message_en
    assert "(backup)" in bad.message_en and bad.value_text == "backup"
    ok = record.finding(_result(True), still_failed=(3, 4))
    assert ok.severity == "ok" and "#3, #4" in ok.message_zh and "stay failed" in ok.message_en
    assert record.finding(_result(True)).message_en == "restore drill of backup #5 passed"


def test_alert_text_names_database_backup_fault_evidence_and_incident():
    title, body = record.alert_text(_result(False, "backup", ["bad file"]), 17)
    assert "his_emr" in title and "#5" in title
    assert "fault: backup" in body and "- bad file" in body and "#17" in body
    assert "index.html" in body and "never counts as the last verified" in body
    assert "incident: #—" in record.alert_text(_result(False, "backup"), None)[1]


def test_a_backup_moved_meanwhile_keeps_its_state_when_the_drill_result_arrives(catalog):
    bid = _completed(catalog, "his_emr")
    catalog.mark_backup_missing(bid, "reconcile found its files gone")
    result = {**_result(True), "backup_id": bid}
    assert record.mark(catalog, result) == "unchanged"
    assert catalog.get_backup(bid).state == "missing"
    other = _completed(catalog, "his_emr")
    assert record.mark(catalog, {**_result(True), "backup_id": other}) == "verified"
    failed = {**_result(False, "backup"), "backup_id": _completed(catalog, "his_emr")}
    assert record.mark(catalog, {**failed, "error": "bad"}) == "failed"
    infra = {**_result(False, "infrastructure"), "backup_id": _completed(catalog, "his_emr")}
    assert record.mark(catalog, infra) == "unchanged"


def test_verdict_fails_naming_every_failed_drill():
    good = {"database_id": "a", "backup_id": 1, "ok": True, "fault": "none", "summary": "ok"}
    bad = {"database_id": "b", "backup_id": 2, "ok": False, "fault": "backup", "summary": "x.gz"}
    assert record.verdict([]) == "没有需要演练的备份 no backup to drill"
    assert record.verdict([good]) == "a #1 已校验 verified"
    with pytest.raises(RuntimeError, match=r"b #2 \(backup\): x\.gz"):
        record.verdict([good, bad])
