"""pitr_backup and the PITR drill of backup_verification with dag.test(): real Airflow,
PostgreSQL, pgBackRest."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import pg_conn_json

REPO = Path(__file__).resolve().parents[2]


def _inventory(
    tmp_path: Path, env, stanza: str | None = None, data_directory: str | None = None
) -> Path:
    pitr = env.server.pitr
    text = textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        notifications:
          - {{name: 主管, kind: email, conn_id: t_smtp, to: [supervisor@hospital.example]}}
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases:
              - {{id: emr_db, conn_id: t_pitr_db, server: pg-main, critical_tables: [patient]}}
            servers:
              - id: pg-main
                conn_id: t_pitr
                data_directory: {data_directory or env.server.data_directory}
                pitr:
                  stanza: {stanza or pitr.stanza}
                  repo: {{path: {pitr.repo.path}}}
                  config_path: {pitr.config_path}
                  socket_dir: {pitr.socket_dir}
                  os_user: {pitr.os_user}
        """)
    path = (
        tmp_path / f"inventory-{stanza or 'ok'}-{(data_directory or 'ok').replace('/', '_')}.yaml"
    )
    path.write_text(text)
    return path


def _dag(name: str):
    spec = importlib.util.spec_from_file_location(
        f"{name}_under_test", REPO / "dags" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, name)()
    for task in dag.tasks:
        task.retries = 0
    return dag


@pytest.fixture
def pitr_dag_env(pg, catalog, pitr_env, airflow_db, mailbox, monkeypatch, tmp_path):
    from hisops.synth.generate import generate

    if pitr_env.cluster.create_database("his_pitr_dag"):
        generate(pitr_env.dsn("his_pitr_dag"), 0.01, seed=3, log=lambda _m: None)
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog.engine.url.database))
    monkeypatch.setenv("AIRFLOW_CONN_T_PITR", pg_conn_json(pitr_env.cluster, "postgres"))
    monkeypatch.setenv("AIRFLOW_CONN_T_PITR_DB", pg_conn_json(pitr_env.cluster, "his_pitr_dag"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_T_SMTP",
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
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path, pitr_env)))
    from hisops.airflow.pools import ensure_pools

    ensure_pools()
    return SimpleNamespace(
        catalog=catalog, env=pitr_env, tmp=tmp_path, mailbox=mailbox, monkeypatch=monkeypatch
    )


def test_wrong_stanza_or_data_directory_is_one_clear_preflight_message(pitr_dag_env):
    from hisops.inventory.loader import load_inventory
    from hisops.pitr.preflight import preflight

    env, tmp = pitr_dag_env.env, pitr_dag_env.tmp
    for kw, expected in (
        ({"data_directory": "/srv/elsewhere"}, r"servers\[0\]\.data_directory: .*/srv/elsewhere"),
        ({"stanza": "wrong-stanza"}, r"servers\[0\]\.pitr\.stanza: .*'wrong-stanza'"),
    ):
        _, server = load_inventory(_inventory(tmp, env, **kw)).locate_server("pg-main")
        result = preflight(server, env.dsn(), env.pgbr, where="systems[0].servers[0].")
        assert len(result.problems) == 1, result.problems
        assert __import__("re").search(expected, result.problems[0]), result.problems[0]
    run = _dag(
        "pitr_backup"
    ).test()  # the right inventory: preflight passes, an incr (→ full) is taken
    assert run.state == "success"
    (backup,) = pitr_dag_env.catalog.backups_for("pg-main")
    assert backup.kind == "physical" and backup.state == "completed"


@pytest.mark.long
def test_pitr_backup_then_pitr_drill_verifies_the_physical_backup(pitr_dag_env):
    run = _dag("pitr_backup").test(run_conf={"type": "full"})
    assert run.state == "success"
    repo = pitr_dag_env.catalog
    (backup,) = repo.backups_for("pg-main")
    assert (backup.kind, backup.state) == ("physical", "completed") and backup.manifest[
        "type"
    ] == "full"

    run = _dag("backup_verification").test(run_conf={"backup_id": backup.id})

    assert run.state == "success"
    assert repo.get_backup(backup.id).state == "verified"
    (verification,) = repo.verifications_for(backup.id)
    assert (
        verification.ok
        and verification.restore_seconds > 0
        and Path(verification.evidence_path).is_file()
    )
    assert any("point proven" in n for n in verification.details["notes"])
