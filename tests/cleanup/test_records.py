"""hisops' own records: roll-ups, batched pruning, reports and evidence, the audit floor."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hisops.catalog.records import FindingRecord, MetricSample
from hisops.cleanup import records as rec
from hisops.inventory.cleanup import AUDIT_FLOOR_DAYS, RecordRetention
from pydantic import ValidationError
from sqlalchemy import text

from tests.cleanup.conftest import inventory_with

NOW = datetime.now(UTC)
TZ = ZoneInfo("Asia/Shanghai")


def _inv(tmp_path, **retention):
    settings = ", ".join(f"{k}: {v}" for k, v in {"batch_rows": 100, **retention}.items())
    return inventory_with(
        tmp_path, "- {id: h1, local: true}\n", extra=f"record_retention: {{{settings}}}"
    )


def _steps(catalog, inv, dry_run=False, **kw):
    return {
        s.item: s
        for s in rec.prune_records(catalog, inv, dry_run=dry_run, log=lambda _: None, **kw)
    }


def test_metric_samples_are_rolled_up_into_daily_aggregates_then_deleted(catalog, tmp_path):
    old_days = [NOW - timedelta(days=d, hours=h) for d in (120, 121) for h in range(0, 24, 2)]
    samples = [
        MetricSample("db1", "connections_pct", float(i % 17), at)
        for i, at in enumerate(old_days * 30)
    ]  # 720 old rows: several batches of 100
    recent = [MetricSample("db1", "connections_pct", 5.0, NOW - timedelta(days=1))]
    catalog.add_metric_samples(samples + recent)
    inv = _inv(tmp_path, metric_samples_days=90)

    dry = _steps(catalog, inv, dry_run=True)["metric_sample"]
    assert (dry.state, dry.rows) == ("dry_run", 720)
    assert len(catalog.metric_series("db1", "connections_pct")) == 721

    step = _steps(catalog, inv)["metric_sample"]
    assert (step.state, step.rows) == ("ok", 720) and step.details["batches"] == 8
    assert [s.observed_at for s in catalog.metric_series("db1", "connections_pct")] == [
        recent[0].observed_at
    ]
    daily = catalog.metric_daily("db1", "connections_pct")
    by_day: dict = {}
    for s in samples:
        by_day.setdefault(s.observed_at.astimezone(TZ).date(), []).append(s.value)
    assert {d.day: (d.n, d.min, d.max, round(d.avg, 9)) for d in daily} == {
        day: (len(v), min(v), max(v), round(statistics.fmean(v), 9)) for day, v in by_day.items()
    }


def test_findings_roll_up_and_the_open_incidents_last_finding_stays(catalog, tmp_path):
    old = NOW - timedelta(days=200)
    runs, ids, findings = [], [], []
    for i, (sev, v) in enumerate([("ok", 10), ("warn", 85), ("critical", 97), ("ok", 12)]):
        run = catalog.start_inspection_run(
            "daily_inspection", f"old-run-{i}"
        )  # one finding per run and check
        f = FindingRecord(
            "db.connections",
            "database",
            "db1",
            sev,
            "连接",
            "connections",
            system_id="s",
            value=v,
            observed_at=old + timedelta(minutes=i),
        )
        ids += catalog.add_findings(run, [f])
        catalog.finish_inspection_run(run, "success")
        runs.append(run)
        findings.append(f)
    incident = catalog.upsert_incident_for(findings[2], ids[2])  # open, points at the critical one
    steps = _steps(catalog, _inv(tmp_path, findings_days=90))
    assert steps["finding"].rows == 3
    assert [f.id for r in runs for f in catalog.findings_for(r)] == [ids[2]]
    (day,) = catalog.finding_daily("db1")
    assert (day.n, day.n_ok, day.n_warn, day.n_critical, day.value_min, day.value_max) == (
        3,
        2,
        1,
        0,
        10,
        85,
    )
    assert catalog.get_incident(incident.incident.id).last_finding_id == ids[2]
    assert steps["inspection_run"].rows == 0  # runs are younger than reports_days: kept


def test_resolved_incidents_past_retention_go_open_ones_stay(catalog, tmp_path):
    long_ago = NOW - timedelta(days=800)
    f = FindingRecord("host.fs", "host", "h1", "warn", "磁盘", "disk", observed_at=long_ago)
    opened = catalog.upsert_incident_for(f, None).incident
    f2 = FindingRecord("host.load", "host", "h1", "warn", "负载", "load", observed_at=long_ago)
    resolved = catalog.upsert_incident_for(f2, None).incident
    catalog.upsert_incident_for(
        FindingRecord(
            "host.load",
            "host",
            "h1",
            "ok",
            "负载",
            "load",
            observed_at=long_ago + timedelta(hours=1),
        ),
        None,
    )
    step = _steps(catalog, _inv(tmp_path, incidents_days=730))["incident"]
    assert step.rows == 1
    assert catalog.get_incident(resolved.id) is None and catalog.get_incident(opened.id) is not None


def test_old_reports_and_drill_evidence_are_removed_inside_the_reports_folder_only(
    catalog, tmp_path
):
    inv = _inv(tmp_path, reports_days=30, evidence_days=30)
    reports = tmp_path / "reports"
    report = reports / "2025-01-01" / "inspection-old.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>old</html>")
    outside = tmp_path / "elsewhere.html"
    outside.write_text("not ours")
    with catalog.engine.begin() as conn:
        for run_id, path in (("r-old", report), ("r-outside", outside)):
            conn.execute(
                text(
                    "INSERT INTO hisops.inspection_run (dag_id, run_id, started_at, state, "
                    "report_path) VALUES ('daily_inspection', :r, now() - interval '60 days', "
                    "'success', :p)"
                ),
                {"r": run_id, "p": str(path)},
            )
    evidence = reports / "verification" / "db1" / "7-20250101" / "index.html"
    evidence.parent.mkdir(parents=True)
    evidence.write_text("<html>drill</html>")
    backup = catalog.register_backup_start("db1", "s", "database", "/x")
    drill = catalog.add_verification(
        backup, True, started_at=NOW - timedelta(days=60), evidence_path=str(evidence)
    )
    steps = _steps(catalog, inv)
    assert not report.exists() and outside.exists()
    assert steps["inspection_run"].rows == 1 and steps["inspection_run"].skipped == 1
    assert not evidence.parent.exists() and (reports / "verification").exists()
    kept = catalog.get_verification(drill)
    assert kept is not None and kept.evidence_path is None and kept.details["evidence_removed"]


def test_audit_events_are_never_pruned_below_the_floor_nor_without_a_verified_export(
    catalog, tmp_path
):
    with catalog.engine.begin() as conn:
        for days in (400, 200, 10):
            conn.execute(
                text(
                    "INSERT INTO hisops.audit_event (at, actor, action, result) "
                    "VALUES (now() - make_interval(days => :d), 'ops', 'x', 'success')"
                ),
                {"d": days},
            )
    step = _steps(catalog, _inv(tmp_path, audit_events_days=AUDIT_FLOOR_DAYS))["audit_event"]
    assert step.state == "skipped" and step.reason == rec.NO_EXPORT
    assert step.details["older_than_retention"] == 2
    assert len(catalog.audit_events(limit=10)) == 3 + 0  # nothing deleted
    with pytest.raises(ValueError, match="below the floor"):
        rec.audit_cutoff(NOW, AUDIT_FLOOR_DAYS - 1)
    with pytest.raises(ValidationError):
        RecordRetention(audit_events_days=AUDIT_FLOOR_DAYS - 1)
    assert RecordRetention(audit_events_days=3650).audit_events_days == 3650  # upwards is fine


def test_audit_floor_in_the_inventory_is_a_validation_error(tmp_path):
    from hisops.inventory.loader import InventoryError

    with pytest.raises(
        InventoryError, match=r"record_retention\.audit_events_days: must be >= 180"
    ):
        _inv(tmp_path, audit_events_days=179)


def test_one_failing_step_does_not_stop_the_others(catalog, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("lock timeout")

    monkeypatch.setattr(catalog, "rollup_metric_batch", broken)
    catalog.add_metric_samples([MetricSample("db1", "m", 1.0, NOW - timedelta(days=100))])
    steps = _steps(catalog, _inv(tmp_path))
    assert (
        steps["metric_sample"].state == "failed" and "lock timeout" in steps["metric_sample"].reason
    )
    assert steps["finding"].state == "ok" and steps["audit_event"].state == "skipped"
