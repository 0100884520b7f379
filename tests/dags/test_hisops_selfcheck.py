"""hisops_selfcheck end to end with dag.test(): real Airflow, real PostgreSQL, real sshd, real
catalog."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository

from tests.conftest import pg_conn_json

REPO = Path(__file__).resolve().parents[2]


def _inventory(tmp_path: Path, with_bad_db: bool) -> Path:
    bad = (
        textwrap.dedent("""\
          - id: d_bad
            conn_id: sc_db_bad
    """)
        if with_bad_db
        else ""
    )
    text = textwrap.dedent("""\
        version: 1
        hospital: 测试医院
        maintenance_window: {start: "01:00", end: "05:00"}
        backup_storage: {path: %(tmp)s/backups}
        reports: {path: %(tmp)s/reports}
        systems:
          - id: s1
            name: 门诊系统
            name_en: Outpatient
            databases:
              - id: d_ok
                conn_id: sc_db_ok
        %(bad)s
            hosts:
              - id: h_local
                local: true
              - id: h_ssh
                ssh_conn_id: sc_ssh
        """) % {"tmp": tmp_path, "bad": textwrap.indent(bad, "      ").strip("\n")}
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def selfcheck_env(pg, new_db, sshd, airflow_db, monkeypatch, tmp_path):
    catalog_db, target_db = new_db("catalog"), new_db("target")
    upgrade(pg.sqlalchemy_url(catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_SC_DB_OK", pg_conn_json(pg, target_db))
    monkeypatch.setenv("AIRFLOW_CONN_SC_DB_BAD", pg_conn_json(pg, target_db, password="wrong"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SC_SSH",
        json.dumps(
            {
                "conn_type": "ssh",
                "host": sshd.host,
                "port": sshd.port,
                "login": sshd.user,
                "extra": {"key_file": str(sshd.client_key)},
            }
        ),
    )
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    yield repo
    repo.dispose()


def _run(tmp_path, monkeypatch, with_bad_db: bool):
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path, with_bad_db)))
    spec = importlib.util.spec_from_file_location(
        f"selfcheck_{with_bad_db}", REPO / "dags" / "hisops_selfcheck.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.hisops_selfcheck().test()


def test_all_reachable_run_is_green_and_recorded(selfcheck_env, tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, with_bad_db=False)
    assert run.state == "success"
    row = selfcheck_env.latest_selfcheck()
    reach = {r["target_id"]: r["reachable"] for r in row.results}
    assert row.ok and reach == {"d_ok": True, "h_local": True, "h_ssh": True}
    event = selfcheck_env.audit_events(action="selfcheck", limit=1)[0]
    assert (event.action, event.result, event.run_id) == ("selfcheck", "success", run.run_id)


def test_unreachable_database_is_reported_not_crashed(selfcheck_env, tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, with_bad_db=True)
    assert run.state == "failed"  # the verdict names the unreachable target
    row = selfcheck_env.latest_selfcheck()
    by_id = {r["target_id"]: r for r in row.results}
    assert not row.ok
    assert (
        by_id["d_bad"]["reachable"] is False
        and "password authentication failed" in by_id["d_bad"]["detail"]
    )
    assert by_id["d_ok"]["reachable"] and by_id["h_ssh"]["reachable"]
