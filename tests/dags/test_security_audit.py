"""security_audit end to end with dag.test(): real Airflow, real
cluster, local host, real catalog."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository

from tests.conftest import pg_conn_json

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def security_env(pg, new_db, airflow_db, monkeypatch, tmp_path):
    catalog_db, target_db = new_db("catalog"), new_db("target")
    upgrade(pg.sqlalchemy_url(catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_SEC_DB", pg_conn_json(pg, target_db))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        systems:
          - id: s1
            name: 门诊系统
            name_en: Outpatient
            databases:
              - id: d1
                conn_id: sec_db
              - id: d_missing
                conn_id: sec_no_such_connection
            hosts:
              - id: h_local
                local: true
        """)
    )
    monkeypatch.setenv("HISOPS_INVENTORY", str(inventory))
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    yield repo, tmp_path
    repo.dispose()


def test_daily_security_audit_records_findings_incidents_and_a_report(security_env):
    repo, tmp_path = security_env
    spec = importlib.util.spec_from_file_location(
        "security_audit_dag", REPO / "dags" / "security_audit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.security_audit().test()
    assert run.state == "success"
    inspection = repo.recent_inspection_runs(1)[0]
    assert inspection.dag_id == "security_audit" and Path(inspection.report_path).is_file()
    findings = {(f.target_id, f.check_id): f for f in repo.findings_for(inspection.id)}
    assert findings[("d1", "security.ssl")].severity == "warn"
    assert (
        findings[("d_missing", "security.reachable")].severity == "check_error"
    )  # a finding, no crash
    assert ("h_local", "security.sshd") in findings
    assert any(i.check_id == "security.ssl" and i.target_id == "d1" for i in repo.open_incidents())
    event = repo.audit_events(action="security_audit.run", limit=1)[0]
    assert event.run_id == run.run_id
    assert "安全审计报告" in Path(inspection.report_path).read_text()


def test_the_demos_deliberate_weaknesses_are_found(security_env):
    """The suite's cluster is the demo's (same PgCluster: no TLS, default logging, pgaudit
    preloaded without pgaudit.log, no checksums) and, like the demo, connects as superuser."""
    from hisops.devenv import demo

    assert not any(
        key in demo.cluster().extra_conf for key in ("ssl", "log_", "pgaudit", "checksum")
    )  # the demo only adds WAL archiving to the same cluster configuration
    repo, _ = security_env
    spec = importlib.util.spec_from_file_location(
        "security_audit_demo", REPO / "dags" / "security_audit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.security_audit().test().state == "success"
    inspection = repo.recent_inspection_runs(1)[0]
    findings = repo.findings_for(inspection.id)
    found = demo.weaknesses_found(findings, ("d1",))
    assert found == {check: ["d1"] for check in demo.DEMO_WEAKNESSES}
    by_check = {f.check_id: f for f in findings if f.target_id == "d1"}
    assert "ssl = off" in by_check["security.ssl"].message_en
    logging = by_check["security.connection_logging"].message_en
    assert "log_connections=off" in logging and "log_disconnections=off" in logging
    assert "lacks user 用户 %u, address 来源地址 %h" in logging
    assert by_check["security.pgaudit"].message_en == "pgaudit loaded, pgaudit.log not set"
    assert by_check["security.data_checksums"].message_en == "data_checksums = off"
    assert by_check["security.connection_role"].message_en.startswith(
        "the ops connection logs in as superuser"
    )
    assert all(by_check[c].severity == "warn" for c in demo.DEMO_WEAKNESSES)
