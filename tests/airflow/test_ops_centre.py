"""运维中心 plugin on the real api-server: every route needs a login and the right permission."""

from __future__ import annotations

import httpx
import pytest
from hisops.airflow.access import OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN, USER
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
    finding = FindingRecord(check_id="db.connections", target_kind="database", target_id="his_demo",
                            severity="warn", message_zh="连接数偏高", message_en="connections high")
    incident = repo.upsert_incident_for(finding, repo.add_findings(run_id, [finding])[0]).incident
    backup = repo.register_backup_start("his_demo", "outpatient", "database", str(folder))
    repo.complete_backup(backup, {"files": []}, "0" * 64, 1024)
    verification = repo.add_verification(backup, True, restore_seconds=1.5, evidence_path=str(folder / "drill"))
    repo.mark_backup_verified(backup)
    yield {"repo": repo, "run": run_id, "incident": incident.id, "verification": verification}
    repo.dispose()


def test_every_route_needs_a_login(api, seeded):
    for path in ("/hisops/", f"/hisops/reports/{seeded['run']}", "/hisops/audit",
                 f"/hisops/evidence/{seeded['verification']}/index.html"):
        assert httpx.get(api + path).status_code == 401, path
    assert httpx.post(f"{api}/hisops/incidents/{seeded['incident']}/ack").status_code == 401


@pytest.mark.parametrize("role", [USER, OPERATOR, SYSTEM_ADMIN, SUPER_ADMIN])
def test_every_role_sees_the_centre_and_its_evidence(login, seeded, role):
    c = login(role)
    page = c.get("/hisops/")
    assert page.status_code == 200 and "运维中心" in page.text and "连接数偏高" in page.text
    assert "report-marker" in c.get(f"/hisops/reports/{seeded['run']}").text
    assert "evidence-marker" in c.get(f"/hisops/evidence/{seeded['verification']}/index.html").text


def test_no_path_traversal_out_of_the_evidence_folder(login, seeded):
    c = login(SUPER_ADMIN)
    assert c.get(f"/hisops/evidence/{seeded['verification']}/..%2F..%2F..%2Fetc%2Fpasswd").status_code == 404


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
    assert (event.action, event.actor, event.result) == ("incident.acknowledge", incident.acknowledged_by, "success")
    assert c.get("/hisops/audit").status_code == 403


def test_system_admin_reads_the_audit_trail(login, seeded):
    resp = login(SYSTEM_ADMIN).get("/hisops/audit")
    assert resp.status_code == 200 and "审计记录" in resp.text
