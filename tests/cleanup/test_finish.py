"""End of a run: the 保留清理报告, alerts, notification through a real
SMTP receiver, the audit event."""

from __future__ import annotations

from pathlib import Path

from hisops.cleanup.finish import alerts_for, finish_run
from hisops.cleanup.results import StepResult
from hisops.notify import Channel, build_apprise_url
from hisops.runinfo import RunInfo

from tests.cleanup.conftest import inventory_with

RUN = RunInfo("retention_cleanup", "scheduled__2026-12-01", "scheduled")


def _inv(tmp_path):
    return inventory_with(
        tmp_path, "- id: h1\n  local: true\n  thresholds: {filesystem_used_pct: {warn: 50}}\n"
    )


def _store(catalog, steps, dry_run=False):
    run_id = catalog.start_cleanup_run(RUN.dag_id, RUN.run_id, dry_run)
    catalog.add_cleanup_steps(run_id, [s.record() for s in steps])
    return run_id


def _fs(used):
    return {
        "filesystems": [{"mount": "/data", "used_pct": used}],
        "action": "delete",
        "paths": ["/data/log/*.log"],
    }


def test_full_filesystem_where_nothing_was_freed_is_an_alert(catalog, tmp_path):
    inv = _inv(tmp_path)
    quiet = StepResult("host", "h1", "logs", details=_fs(93.0))
    busy = StepResult("host", "h1", "logs", bytes_freed=10, details=_fs(93.0))
    low = StepResult("host", "h1", "logs", details=_fs(20.0))
    for steps, expected in (([quiet], 1), ([busy], 0), ([low], 0)):
        run_id = _store(catalog, steps)
        alerts = alerts_for(inv, catalog.cleanup_steps(run_id))
        assert len(alerts) == expected
        catalog.finish_cleanup_run(run_id, "success")
        catalog.delete_cleanup_run(run_id)
    (alert,) = alerts_for(inv, catalog.cleanup_steps(_store(catalog, [quiet])))
    assert "h1:/data" in alert and "93%" in alert and "50%" in alert


def test_report_notification_and_audit(catalog, tmp_path, mailbox):
    inv = _inv(tmp_path)
    steps = [
        StepResult("host", "h1", "logs", files=3, bytes_freed=3000, details=_fs(10.0)),
        StepResult(
            "host", "h1", "pg", "protected", "触及受保护路径 rule reaches a protected path: x ↔ y"
        ),
        StepResult("catalog", "catalog", "metric_sample", rows=720),
        StepResult("catalog", "catalog", "audit_event", "skipped", "no export"),
    ]
    run_id = _store(catalog, steps)
    url = build_apprise_url(
        "email",
        host=mailbox.host,
        port=mailbox.port,
        to=["boss@hospital.example"],
        extra={"from_email": "hisops@hospital.example", "disable_ssl": True, "disable_tls": True},
    )
    channel = Channel("主管", "email", url, "warn")
    out = finish_run(catalog, inv, run_id, RUN, channels=[channel])
    html = Path(out["report"]).read_text()
    assert Path(out["report"]).stat().st_mode & 0o777 == 0o600
    assert "保留清理报告" in html and "2.9 KB" in html and "metric_sample" in html and "720" in html
    assert (
        "触及受保护路径" in html
        and "<script" not in html
        and "http" not in html.replace("https://", "")
    )
    assert out["state"] == "failed" and out["alerts"] == 1 and out["bytes_freed"] == 3000
    (subject,) = mailbox.subjects("保留清理")
    assert "释放 freed 2.9 KB" in subject and "删除记录 rows 720" in subject
    event = catalog.audit_events(limit=1)[0]
    assert (event.action, event.result, event.details["per_rule"]["h1/logs"]) == (
        "retention_cleanup",
        "failure",
        3000,
    )
    assert catalog.get_cleanup_run(run_id).summary["per_table"]["catalog/metric_sample"] == 720
