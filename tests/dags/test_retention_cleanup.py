"""retention_cleanup end to end with dag.test(): real Airflow, catalog,
files, metadata DB, SMTP receiver."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

from tests.cleanup.conftest import aged, tree_state
from tests.conftest import TEST_HOME, pg_conn_json

REPO = Path(__file__).resolve().parents[2]


def _inventory(tmp_path: Path) -> Path:
    text = textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        notifications:
          - {{name: 主管, kind: email, conn_id: rc_smtp, to: [boss@hospital.example]}}
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases:
              - {{id: d1, conn_id: rc_db}}
            hosts:
              - id: h-local
                local: true
                cleanup:
                  - {{name: his-logs, paths: ["{tmp_path}/hislogs/**/*.log"], older_than_days: 14}}
                  # the suite's cluster keeps its data directory under here: only the server knows
                  - {{name: pg-logs, paths: ["{TEST_HOME}/pg/**/*.log"], older_than_days: 14}}
        """)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def dag_env(pg, catalog, airflow_db, mailbox, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_RC_DB", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_AIRFLOW_DB", pg_conn_json(pg, "airflow"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_RC_SMTP",
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
    return catalog


def _dag():
    spec = importlib.util.spec_from_file_location(
        "retention_cleanup_under_test", REPO / "dags" / "retention_cleanup.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.retention_cleanup()
    for task in dag.tasks:
        task.retries = 0
    return dag


def test_manual_run_previews_then_a_real_run_frees_the_files(dag_env, tmp_path, mailbox):
    old = [
        aged(tmp_path / "hislogs" / "app" / f"his.{i}.log", 20 + i, b"z" * 1000) for i in range(3)
    ]
    young = aged(tmp_path / "hislogs" / "app" / "his.log", 1)
    before = tree_state(tmp_path / "hislogs")

    run = _dag().test()  # manual run, dry_run=auto → preview
    assert run.state == "success"
    assert tree_state(tmp_path / "hislogs") == before
    (preview,) = [r for r in _runs(dag_env) if r.run_id == run.run_id]
    assert (
        preview.dry_run and preview.state == "failed"
    )  # the protected-path hit is a failure to report
    planned = sorted(f.path for f in dag_env.cleanup_files(preview.id, ["would_delete"]))
    assert planned == sorted(str(p) for p in old)

    steps = {(s.scope, s.item): s for s in dag_env.cleanup_steps(preview.id)}
    assert steps[("host", "pg-logs")].state == "protected"  # SHOW data_directory: the second guard
    assert steps[("catalog", "audit_event")].state == "skipped"
    assert steps[("airflow", "dag_run")].state == "dry_run"
    assert ("task_logs", "airflow-task-logs") in steps
    report = Path(preview.report_path)
    assert report.stat().st_mode & 0o777 == 0o600
    html = report.read_text()
    assert (
        "保留清理报告" in html
        and "预演 Dry run" in html
        and "his-logs" in html
        and "<script" not in html
    )
    assert mailbox.subjects("预演 dry run · 保留清理")  # the protected hit was notified

    run = _dag().test(run_conf={"dry_run": "no"})
    assert run.state == "success"
    assert not any(p.exists() for p in old) and young.exists()
    (real,) = [r for r in _runs(dag_env) if r.run_id == run.run_id]
    deleted = dag_env.cleanup_files(real.id, ["deleted"])
    assert (
        sorted(f.path for f in deleted) == planned and sum(f.bytes_freed for f in deleted) == 3000
    )
    assert real.summary["per_rule"]["h-local/his-logs"] == 3000
    actions = [e.action for e in dag_env.audit_events(limit=20)]
    assert actions.count("retention_cleanup") == 2 and "retention_cleanup.start" in actions


def _runs(repo):
    return repo.recent_cleanup_runs(50)
