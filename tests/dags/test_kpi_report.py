"""kpi_report DAG end to end with dag.test(): real catalog, real SMTP
receiver, the example inventory."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO, pg_conn_json
from tests.kpi.seed import seed_november


def _inventory(tmp_path: Path) -> Path:
    text = (REPO / "inventory" / "hospital.example.yaml").read_text()
    text = text.replace("path: .demo/reports", f"path: {tmp_path / 'reports'}")
    text = text.replace("path: .demo/backups", f"path: {tmp_path / 'backups'}")
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def dag_env(pg, catalog, airflow_db, mailbox, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv(
        "AIRFLOW_CONN_HISOPS_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": mailbox.port,
                "extra": {
                    "from_email": "hisops@hospital.example",
                    "disable_tls": True,
                    "disable_ssl": True,
                },
            }
        ),
    )
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path)))
    return catalog


def _dag():
    spec = importlib.util.spec_from_file_location(
        "kpi_report_under_test", REPO / "dags" / "kpi_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.kpi_report()
    for task in dag.tasks:
        task.retries = 0
    return dag


def test_monthly_run_mails_the_report_and_archives_the_evidence(dag_env, mailbox, tmp_path):
    seed_november(dag_env)
    run = _dag().test(run_conf={"month": "2026-11"})
    assert run.state == "success"
    (report,) = dag_env.kpi_reports()
    assert report.label == "2026-11" and Path(report.path).is_file()
    assert [str(m["subject"])[:30] for m in mailbox.messages] == [
        "运维考核月报 O&M KPI report 2026-11 · "[:30]
    ]
    (pack,) = dag_env.evidence_packs()
    with tarfile.open(pack.path) as tar:
        assert "evidence-2026-11/kpi/kpi-2026-11.html" in tar.getnames()


def test_bad_period_fails_with_the_field_named(dag_env, capsys):
    run = _dag().test(run_conf={"start": "2026-11-05", "end": "2026-11-01"})
    assert run.state == "failed"
    assert "end 2026-11-01 is before start 2026-11-05" in capsys.readouterr().out
    assert dag_env.kpi_reports() == []
