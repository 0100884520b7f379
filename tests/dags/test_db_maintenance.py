"""db_maintenance end to end with dag.test() and Airflow's
human-in-the-loop API on a real api-server.

The approval is answered through the api-server's HITL endpoint (the Required actions page calls
the same one) by real FAB users: the requester itself (refused), an 运维人员 (refused), then a
系统管理员 who is not the requester (applied). dag.test() triggers as user ``dag_test``.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg2
import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository
from hisops.roles import SYSTEM_ADMIN

from tests.airflow.conftest import api, catalog_url, login  # noqa: F401 (fixtures)
from tests.tune.conftest import planted, verified_backup  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
DB = "d_planted"
pytestmark = pytest.mark.long


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
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (
        (now - timedelta(hours=1)).strftime("%H:%M"),
        (now + timedelta(hours=2)).strftime("%H:%M"),
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        hospital: 测试人民医院
        maintenance_window: {{start: "{start}", end: "{end}"}}
        tuning: {{slow_mean_ms: 0.001, slow_min_calls: 20, unused_index_min_mb: 0.1}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        systems:
          - id: s1
            name: 门诊系统
            name_en: Outpatient
            databases: [{{id: {DB}, conn_id: dm_db}}]
        """)
    )
    return path


@pytest.fixture
def env(pg, new_db, planted, airflow_db, monkeypatch, tmp_path):  # noqa: F811
    catalog_db = new_db("catalog")
    upgrade(pg.sqlalchemy_url(catalog_db))
    target = planted.rsplit("dbname=", 1)[1].split()[0]
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", _pg(pg, catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_DM_DB", _pg(pg, target))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_AIRFLOW_DB", _pg(pg, "airflow"))
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path)))
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    verified_backup(repo, DB, tmp_path / "backups" / "b1", "s1")
    from hisops.inventory.loader import load_inventory
    from hisops.runinfo import RunInfo
    from hisops.tune.review import review_database

    inv = load_inventory(tmp_path / "inventory.yaml")
    review_database(
        repo, inv, DB, planted, RunInfo("performance_review", "manual__t", triggering_user="op")
    )
    for p in repo.proposals(DB, states=("proposed",)):
        if p.kind == "create_index":
            repo.move_proposal(p.id, ("proposed",), "approved", by="sysadmin")
    yield repo, planted
    repo.dispose()


def _client(api_url: str, username: str, role: str) -> httpx.Client:  # noqa: F811
    from hisops.airflow.roles import ensure_user

    password = secrets.token_urlsafe(12)
    ensure_user(username, role, password)
    token = httpx.post(
        f"{api_url}/auth/token", json={"username": username, "password": password}, timeout=60
    ).json()["access_token"]
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _dag():
    spec = importlib.util.spec_from_file_location(
        "db_maintenance_under_test", REPO / "dags" / "db_maintenance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.db_maintenance()


def _answer(client: httpx.Client, option: str, box: dict, done: threading.Event) -> None:
    """Wait for the approval request, then answer it through the HITL
    REST API as ``client``'s user."""
    while not done.is_set():
        listed = (
            client.get("/api/v2/dags/db_maintenance/dagRuns/~/hitlDetails")
            .json()
            .get("hitl_details", [])
        )
        found = [h for h in listed if not h.get("response_received")]
        if found:
            ti = found[0]["task_instance"]
            box["response"] = client.patch(
                f"/api/v2/dags/db_maintenance/dagRuns/{ti['dag_run_id']}/taskInstances/approve/-1/hitlDetails",
                json={"chosen_options": [option], "params_input": {}},
            )
            return
        time.sleep(1)


def _run_answered_by(client: httpx.Client, option: str = "Approve"):
    """dag.test() (main thread: it parses DAGs with signals) while a thread answers the approval."""
    box: dict = {}
    done = threading.Event()
    thread = threading.Thread(target=_answer, args=(client, option, box, done), daemon=True)
    thread.start()
    try:
        run = _dag().test(run_conf={"database_id": DB, "dry_run": "no"})
    finally:
        done.set()
        thread.join(30)
    assert box["response"].status_code == 200, box["response"].text
    return run


def _index_exists(dsn: str) -> bool:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.hisops_visit_patient_id_idx') IS NOT NULL")
        found = cur.fetchone()[0]
    conn.close()
    return found


def test_approval_by_requester_is_refused_then_a_sysadmin_applies(env, api):  # noqa: F811
    """The requester (a 系统管理员 itself) answers: refused and audited. An 运维人员 cannot even
    answer in our run (Airflow recorded no answer from that role) — the role floor of the gate is
    proven in tests/tune/test_maintenance.py. Then a 系统管理员 other than the requester approves:
    applied."""
    repo, dsn = env
    run = _run_answered_by(_client(api, "dag_test", SYSTEM_ADMIN))
    assert run.state == "failed"
    refused = [
        e for e in repo.audit_events() if e.action == "db_maintenance" and e.result == "refused"
    ]
    assert "is the requester" in refused[0].details["gate"][2]["reason_en"]
    assert refused[0].details["gate"][2]["details"]["approver"] == "dag_test"
    assert not _index_exists(dsn)
    sysadmin = f"sa{secrets.token_hex(3)}"
    run = _run_answered_by(_client(api, sysadmin, SYSTEM_ADMIN))
    assert run.state == "success"
    assert _index_exists(dsn)
    ops = repo.maintenance_for_run(run.run_id)
    assert ops and all(o.state == "applied" for o in ops)
    created = [o for o in ops if o.kind == "create_index"][0]
    assert created.before["exists"] is False and created.after["bytes"] > 0
    [ok] = [
        e
        for e in repo.audit_events()
        if e.action == "db_maintenance" and e.details.get("phase") == "start"
    ]
    assert ok.details["gate"][2]["details"]["approver"] == sysadmin
