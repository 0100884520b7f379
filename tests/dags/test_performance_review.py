"""performance_review end to end with dag.test(): real Airflow, planted PostgreSQL database,
catalog and SMTP receiver; the mailed report shows the proven suggestion with its plans."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository

from tests.tune.conftest import planted  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]


def _pg(pg, dbname: str) -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": pg.host,
            "port": pg.port,
            "login": pg.user,
            "password": pg.password,
            "schema": dbname,
        }
    )


def _inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        hospital: 测试人民医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        tuning: {{slow_mean_ms: 0.001, slow_min_calls: 20, unused_index_min_mb: 0.1}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        notifications:
          - {{name: 信息科主管, kind: email, conn_id: pr_smtp, to: [supervisor@hospital.example]}}
        systems:
          - id: s1
            name: 门诊系统
            name_en: Outpatient
            databases: [{{id: d_planted, conn_id: pr_db}}]
        """)
    )
    return path


@pytest.fixture
def env(pg, new_db, planted, airflow_db, mailbox, monkeypatch, tmp_path):  # noqa: F811
    catalog_db = new_db("catalog")
    upgrade(pg.sqlalchemy_url(catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", _pg(pg, catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_PR_DB", _pg(pg, planted.rsplit("dbname=", 1)[1].split()[0]))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PR_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": mailbox.host,
                "port": mailbox.port,
                "extra": {
                    "from_email": "hisops@hospital.example",
                    "disable_ssl": True,
                    "disable_tls": True,
                },
            }
        ),
    )
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path)))
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    yield repo, tmp_path
    repo.dispose()


def _dag():
    spec = importlib.util.spec_from_file_location(
        "performance_review_under_test", REPO / "dags" / "performance_review.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.performance_review()


def test_review_run_proposes_the_index_and_mails_the_report(env, mailbox):
    repo, tmp_path = env
    run = _dag().test()
    assert run.state == "success"
    [proposal] = [p for p in repo.proposals("d_planted") if p.kind == "create_index"]
    assert proposal.state == "proposed" and proposal.details["columns"] == ["patient_id"]
    [report] = list((tmp_path / "reports").glob("*/performance-*.html"))
    assert oct(report.stat().st_mode & 0o777) == "0o600"
    html = report.read_text()
    assert (
        "性能优化评估报告" in html and "hisops_visit_patient_id_idx" in html and "Seq Scan" in html
    )
    assert "<script" not in html
    [mail] = [m for m in mailbox.messages if str(m["subject"]).startswith("性能优化评估")]
    assert "索引建议 suggestions 1" in str(mail["subject"])
    assert "hisops_visit_patient_id_idx" in mail.get_body(preferencelist=("html",)).get_content()
