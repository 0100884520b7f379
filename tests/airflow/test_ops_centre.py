"""运维中心 plugin on the real api-server: every route needs a login and the right permission."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import httpx
import pytest
from hisops.airflow.access import AUDITOR, OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN, USER
from hisops.catalog.records import FindingRecord
from hisops.catalog.repository import CatalogRepository

pytestmark = pytest.mark.airflow_server


@pytest.fixture(scope="module")
def seeded(catalog_url, tmp_path_factory):
    """One open incident, one inspection report, one verified backup with an evidence page."""
    repo = CatalogRepository.from_url(catalog_url)
    folder = tmp_path_factory.mktemp("evidence")
    report = folder / "report.html"
    report.write_text("<html><body>巡检报告 report-marker</body></html>")
    (folder / "drill").mkdir()
    (folder / "drill" / "index.html").write_text("<html>证据 evidence-marker</html>")
    run_id = repo.start_inspection_run("daily_inspection", "manual__seed")
    repo.finish_inspection_run(run_id, "success", report_path=str(report))
    finding = FindingRecord(
        check_id="db.connections",
        target_kind="database",
        target_id="his_demo",
        severity="warn",
        message_zh="连接数偏高",
        message_en="connections high",
    )
    incident = repo.upsert_incident_for(finding, repo.add_findings(run_id, [finding])[0]).incident
    backup = repo.register_backup_start("his_demo", "outpatient", "database", str(folder))
    repo.complete_backup(backup, {"files": []}, "0" * 64, 1024)
    verification = repo.add_verification(
        backup, True, restore_seconds=1.5, evidence_path=str(folder / "drill")
    )
    repo.mark_backup_verified(backup)
    yield {"repo": repo, "run": run_id, "incident": incident.id, "verification": verification}
    repo.dispose()


def test_every_route_needs_a_login(api, seeded):
    for path in (
        "/hisops/",
        f"/hisops/reports/{seeded['run']}",
        "/hisops/audit",
        f"/hisops/evidence/{seeded['verification']}/index.html",
    ):
        assert httpx.get(api + path).status_code == 401, path
    assert httpx.post(f"{api}/hisops/incidents/{seeded['incident']}/ack").status_code == 401


@pytest.mark.parametrize("role", [USER, OPERATOR, SYSTEM_ADMIN, SUPER_ADMIN, AUDITOR])
def test_every_role_sees_the_centre_and_its_evidence(login, seeded, role):
    c = login(role)
    page = c.get("/hisops/")
    assert page.status_code == 200 and "运维中心" in page.text and "连接数偏高" in page.text
    assert "report-marker" in c.get(f"/hisops/reports/{seeded['run']}").text
    assert "evidence-marker" in c.get(f"/hisops/evidence/{seeded['verification']}/index.html").text


def test_no_path_traversal_out_of_the_evidence_folder(login, seeded):
    c = login(SUPER_ADMIN)
    assert (
        c.get(f"/hisops/evidence/{seeded['verification']}/..%2F..%2F..%2Fetc%2Fpasswd").status_code
        == 404
    )


def test_read_only_user_cannot_acknowledge_or_read_the_audit_trail(login, seeded):
    c = login(USER)
    assert c.post(f"/hisops/incidents/{seeded['incident']}/ack").status_code == 403
    assert c.get("/hisops/audit").status_code == 403
    assert seeded["repo"].get_incident(seeded["incident"]).state == "open"


def test_operator_acknowledges_and_it_is_audited(login, seeded):
    c = login(OPERATOR)
    resp = c.post(f"/hisops/incidents/{seeded['incident']}/ack")
    assert resp.status_code == 303
    incident = seeded["repo"].get_incident(seeded["incident"])
    assert incident.state == "acknowledged" and incident.acknowledged_by.startswith("u")
    event = seeded["repo"].audit_events(limit=1)[0]
    assert (event.action, event.actor, event.result) == (
        "incident.acknowledge",
        incident.acknowledged_by,
        "success",
    )
    assert c.get("/hisops/audit").status_code == 403


def test_system_admin_reads_the_audit_trail(login, seeded):
    resp = login(SYSTEM_ADMIN).get("/hisops/audit")
    assert resp.status_code == 200 and "审计记录" in resp.text


@pytest.mark.parametrize("role", [USER, OPERATOR, AUDITOR])
def test_the_centre_is_in_every_roles_navigation(login, role):
    """The UI builds its navigation from /api/v2/plugins (needs "Plugins" read)."""
    resp = login(role).get("/api/v2/plugins")
    assert resp.status_code == 200, resp.text
    views = [v for p in resp.json()["plugins"] for v in p["external_views"]]
    assert any(v["href"] == "/hisops/" and v["url_route"] == "hisops" for v in views)


def test_auditor_reads_the_audit_trail_in_chinese_with_times_in_the_inventory_zone(login, seeded):
    seeded["repo"].add_audit_event(
        "zhang",
        "dag.trigger",
        "dag:db_backup",
        "success",
        details={"conf": "{}", "http": "POST 200"},
        dag_id="db_backup",
        run_id="manual__x",
    )
    event = seeded["repo"].audit_events(limit=1)[0]
    page = login(AUDITOR).get("/hisops/audit")
    assert page.status_code == 200
    assert (
        "触发运行 trigger run" in page.text and "<dl>" in page.text and "<dt>http</dt>" in page.text
    )
    local = event.at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    assert local in page.text and "/dags/db_backup/runs/manual__x" in page.text
    assert '{"conf"' not in page.text  # details are a definition list, not raw JSON


def test_bad_limit_is_400_with_a_message(login):
    resp = login(SUPER_ADMIN).get("/hisops/audit", params={"limit": "-5"})
    assert resp.status_code == 400 and "limit" in resp.json()["detail"]
    assert login(SUPER_ADMIN).get("/hisops/audit", params={"limit": "abc"}).status_code == 400


def test_acknowledging_a_missing_incident_is_404_with_a_message(login):
    resp = login(OPERATOR).post("/hisops/incidents/987654/ack")
    assert resp.status_code == 404 and "987654" in resp.json()["detail"]


def test_home_shows_times_in_the_inventory_zone_and_links_to_runs(login, seeded):
    run = seeded["repo"].get_inspection_run(seeded["run"])
    page = login(USER).get("/hisops/").text
    local = run.started_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert local in page and f"/dags/daily_inspection/runs/{run.run_id}" in page
    assert "小时 h" not in page or 'class="nw"' in page


@pytest.fixture(scope="module")
def change_and_pack(seeded, tmp_path_factory):
    """A recorded change (two steps), a KPI report file and an evidence pack file."""
    repo = seeded["repo"]
    change = repo.create_change(
        "新增病区床位表",
        "operator1",
        description="床位管理",
        details={"request": {"kind": "sql", "reason": "床位管理", "impact": "无停机"}},
        kind="sql",
        targets=["his_inpatient"],
        dag_run_id="manual__chg",
    )
    from hisops.change.results import passed

    step = passed("request", "申请 change-marker", "request change-marker")
    repo.add_change_step(change, "request", "passed", step.as_dict())
    repo.set_change_state(change, "completed", finished=True)
    folder = tmp_path_factory.mktemp("kpi")
    kpi = folder / "kpi-2026-11.html"
    kpi.write_text("<html>运维考核 kpi-marker</html>")
    pack = folder / "evidence-2026-11.tar.gz"
    pack.write_bytes(b"pack-marker")
    from datetime import UTC, datetime

    kpi_id = repo.record_kpi_report(
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        "2026-11",
        str(kpi),
        "0" * 64,
        {},
    )
    pack_id = repo.record_evidence_pack("2026-11", str(pack), "1" * 64, 11, [], "admin")
    return {"change": change, "kpi": kpi_id, "pack": pack_id}


def test_changes_kpi_reports_and_evidence_packs_are_in_the_centre(api, login, change_and_pack):
    ids = change_and_pack
    for path in (
        f"/hisops/changes/{ids['change']}",
        f"/hisops/kpi/{ids['kpi']}",
        f"/hisops/evidence-packs/{ids['pack']}",
    ):
        assert httpx.get(api + path).status_code == 401, path
    viewer = login(USER)
    home = viewer.get("/hisops/").text
    assert f'href="changes/{ids["change"]}"' in home and "新增病区床位表" in home
    assert f'href="kpi/{ids["kpi"]}"' in home
    assert "2026-11" in home and f'href="evidence-packs/{ids["pack"]}"' not in home
    page = viewer.get(f"/hisops/changes/{ids['change']}")
    assert page.status_code == 200 and "change-marker" in page.text and "成功" in page.text
    assert "kpi-marker" in viewer.get(f"/hisops/kpi/{ids['kpi']}").text
    assert viewer.get("/hisops/changes/999999").status_code == 404
    # the pack holds the audit trail: audit readers only
    assert viewer.get(f"/hisops/evidence-packs/{ids['pack']}").status_code == 403
    auditor = login(AUDITOR)
    assert f'href="evidence-packs/{ids["pack"]}"' in auditor.get("/hisops/").text
    download = auditor.get(f"/hisops/evidence-packs/{ids['pack']}")
    assert download.status_code == 200 and download.content == b"pack-marker"
