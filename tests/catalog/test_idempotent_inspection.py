"""A retried inspection stores nothing twice (item 8) and log offsets remember who read (item 1)."""

from __future__ import annotations

from datetime import UTC, datetime

from hisops.catalog.records import FindingRecord, MetricSample

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def finding(severity: str, check: str = "db.connections", target: str = "his_db") -> FindingRecord:
    return FindingRecord(
        check_id=check,
        target_kind="database",
        target_id=target,
        severity=severity,  # type: ignore[arg-type]
        system_id="s1",
        message_zh=f"连接 {severity}",
        message_en=f"connections {severity}",
        observed_at=T0,
    )


def test_findings_samples_and_incidents_of_a_retried_run_are_stored_once(catalog) -> None:
    run = catalog.start_inspection_run("daily_inspection", "scheduled__1")
    batch = [finding("warn"), finding("ok", check="db.locks")]
    first = catalog.add_findings(run, batch)
    opened = catalog.upsert_incident_for(batch[0], first[0])
    samples = [MetricSample("his_db", "connections_pct", 90.0, T0, inspection_run_id=run)]
    catalog.add_metric_samples(samples)

    again = catalog.add_findings(run, batch)  # the retried task
    replay = catalog.upsert_incident_for(batch[0], again[0])
    catalog.add_metric_samples(samples)

    assert again == first and len(catalog.findings_for(run)) == 2
    assert len(catalog.metric_series("his_db", "connections_pct")) == 1
    assert opened.action == replay.action == "opened"
    stored = catalog.get_incident(opened.incident.id)
    assert stored.occurrences == 1 and len(catalog.open_incidents()) == 1

    later = catalog.start_inspection_run("daily_inspection", "scheduled__2")
    ok = finding("ok")
    [ok_id] = catalog.add_findings(later, [ok])
    resolved = catalog.upsert_incident_for(ok, ok_id)
    assert resolved.action == "resolved" and "connections ok" in resolved.incident.resolution_note
    assert (
        catalog.upsert_incident_for(ok, ok_id).action == "resolved"
    )  # retried: same answer, no change


def test_close_incident_says_why(catalog) -> None:
    run = catalog.start_inspection_run("daily_inspection", "r")
    f = finding("critical")
    [fid] = catalog.add_findings(run, [f])
    change = catalog.upsert_incident_for(f, fid)
    closed = catalog.close_incident(
        change.incident.id, "目标已从清单中移除 (target removed from the inventory)"
    )
    assert closed.action == "resolved" and closed.incident.state == "resolved"
    assert catalog.get_incident(change.incident.id).resolution_note.startswith("目标已从清单中移除")
    assert catalog.close_incident(change.incident.id, "again") is None


def test_log_offsets_per_reader_and_retry_rereads(catalog) -> None:
    catalog.save_log_offsets("h1", "machine-a", 1, {"/l/x.log": (10, 100)})
    catalog.save_log_offsets("h1", "machine-a", 2, {"/l/x.log": (10, 250), "/l/y.log": (11, 5)})
    assert catalog.log_offsets("h1", "machine-a") == {"/l/x.log": (10, 250), "/l/y.log": (11, 5)}
    # run 2 retried: where run 2 started (y.log was new to it)
    assert catalog.log_offsets("h1", "machine-a", 2) == {"/l/x.log": (10, 100)}
    catalog.save_log_offsets("h1", "machine-a", 2, {"/l/x.log": (10, 260)})
    assert catalog.log_offsets("h1", "machine-a", 2) == {"/l/x.log": (10, 100)}
    assert catalog.log_offsets("h1", "machine-b") == {}  # another reader starts on its own
    catalog.save_log_offsets("h1", "machine-a", 3, {"/l/x.log": (12, 7)}, listed=["/l/x.log"])
    assert catalog.log_offsets("h1", "machine-a") == {"/l/x.log": (12, 7)}  # y.log gone: forgotten
