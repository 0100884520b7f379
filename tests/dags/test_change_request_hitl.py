"""change_request end to end: dag.test() against a real cluster, the approval answered through the
api-server's human-in-the-loop REST API (what 需要操作 Required actions calls) by real FAB users.

- the demo's two changes: one that verifies (applied), one whose verify script fails after apply
  (its source table is emptied while it waits for approval) so the revert runs and verify passes
  again — catalog rows, states and audit events asserted;
- the requester (a 系统管理员 itself) approves its own change: refused, nothing applied;
- nobody answers: Airflow's own timeout sweep (the scheduler's ``check_awaiting_input_timeouts``)
  fails the approval task and the change is cancelled, nothing applied.

dag.test() triggers as user ``dag_test``: that user is the requester.
"""

from __future__ import annotations

import importlib.util
import secrets
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg2
import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository
from hisops.devenv.demo import DEMO_CHANGES
from hisops.roles import SYSTEM_ADMIN

from tests.airflow.conftest import api, catalog_url  # noqa: F401 (fixtures)
from tests.conftest import REPO, pg_conn_json
from tests.tune.conftest import verified_backup

pytestmark = pytest.mark.long
DAG_ID = "change_request"


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
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        systems:
          - id: inpatient
            name: 住院系统
            name_en: Inpatient
            databases: [{{id: his_inpatient, conn_id: chg_db}}]
        """)
    )
    return path


@pytest.fixture
def env(pg, new_db, airflow_db, monkeypatch, tmp_path):
    catalog_db, target = new_db("catalog"), new_db("chg")
    upgrade(pg.sqlalchemy_url(catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_CATALOG", pg_conn_json(pg, catalog_db))
    monkeypatch.setenv("AIRFLOW_CONN_CHG_DB", pg_conn_json(pg, target))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_AIRFLOW_DB", pg_conn_json(pg, "airflow"))
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path)))
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    verified_backup(repo, "his_inpatient", tmp_path / "backups" / "b1", "inpatient")
    yield repo, pg.dsn(target)
    repo.dispose()


def _client(api_url: str, username: str) -> httpx.Client:
    from hisops.airflow.roles import ensure_user

    password = secrets.token_urlsafe(12)
    ensure_user(username, SYSTEM_ADMIN, password)
    token = httpx.post(
        f"{api_url}/auth/token", json={"username": username, "password": password}, timeout=60
    ).json()["access_token"]
    client = httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    client.hisops_user = username  # type: ignore[attr-defined]
    return client


def _dag(response_timeout: timedelta | None = None):
    spec = importlib.util.spec_from_file_location(
        "change_request_hitl_under_test", REPO / "dags" / "change_request.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.change_request()
    for task in dag.tasks:
        task.retries = 0
    if response_timeout is not None:
        dag.get_task("approve").response_timeout = response_timeout
    return dag


def _pending(client: httpx.Client) -> list[dict]:
    listed = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails").json()
    return [h for h in listed.get("hitl_details", []) if not h.get("response_received")]


def _answer(client, before: Callable[[], None] | None, box: dict, done: threading.Event) -> None:
    """Wait for the approval request, then approve it through the HITL REST API as ``client``."""
    while not done.is_set():
        found = _pending(client)
        if found:
            box["body"] = found[0]["body"]
            if before:
                before()
            ti = found[0]["task_instance"]
            box["response"] = client.patch(
                f"/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/approve/-1/"
                "hitlDetails",
                json={"chosen_options": ["Approve"], "params_input": {}},
            )
            return
        time.sleep(1)


def _sweep_timeouts(box: dict, done: threading.Event) -> None:
    """What the scheduler does every few seconds for awaiting_input tasks past their deadline."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    runner = SchedulerJobRunner(job=Job())
    while not done.is_set():
        runner.check_awaiting_input_timeouts()
        box["swept"] = box.get("swept", 0) + 1
        time.sleep(2)


def _run(conf: dict, worker: Callable[..., None], *args, dag=None):
    """dag.test() in the main thread (it parses DAGs with signals) while ``worker`` answers."""
    box: dict = {}
    done = threading.Event()
    thread = threading.Thread(target=worker, args=(*args, box, done), daemon=True)
    thread.start()
    try:
        run = (dag or _dag()).test(run_conf=conf)
    finally:
        done.set()
        thread.join(60)
    return run, box


def _sql(dsn: str, statement: str) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def _tables(dsn: str) -> list[str]:
    rows = _sql(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return [r[0] for r in rows]


def _conf(change: dict) -> dict:
    return {"kind": "sql", "database_id": "his_inpatient", **change}


def _change_of(repo, run):
    [change] = [c for c in repo.recent_changes() if c.dag_run_id == run.run_id]
    return change


def _steps(repo, change_id) -> list[tuple[str, str]]:
    return [(s.step, s.state) for s in repo.change_steps(change_id)]


def _audit(repo, change_id) -> list[tuple[str, str]]:
    events = [e for e in repo.audit_events() if e.target == f"change:{change_id}"]
    return [(e.action, e.result) for e in sorted(events, key=lambda e: e.id)]


def test_the_demos_two_changes_one_applied_one_reverted(env, api):  # noqa: F811
    repo, dsn = env
    sysadmin = _client(api, f"sa{secrets.token_hex(3)}")
    applied, reverted = DEMO_CHANGES

    run, box = _run(_conf(applied), _answer, sysadmin, None)

    assert box["response"].status_code == 200, box["response"].text
    assert "CREATE TABLE ward_bed" in box["body"] and "试运行通过" in box["body"]  # assessment
    assert run.state == "success"
    change = _change_of(repo, run)
    assert (change.state, change.requested_by, change.approved_by) == (
        "completed",
        "dag_test",
        sysadmin.hisops_user,
    )
    assert change.pre_backup_id is not None
    assert _steps(repo, change.id) == [
        ("request", "passed"),
        ("assessment", "passed"),
        ("backup", "passed"),
        ("approval", "passed"),
        ("apply", "passed"),
        ("verify", "passed"),
        ("outcome", "passed"),
    ]
    assert _audit(repo, change.id) == [
        ("change.request", "success"),
        ("change.assessment", "success"),
        ("change.backup", "success"),
        ("change.approval", "success"),
        ("change.apply", "success"),
        ("change.verify", "success"),
        ("change.outcome", "success"),
    ]
    assert _tables(dsn) == ["ward_bed"] and Path(change.details["page_path"]).is_file()

    _sql(
        dsn, "CREATE TABLE bed_staging (id int, ward text); INSERT INTO bed_staging VALUES (1, 'x')"
    )
    run, box = _run(_conf(reverted), _answer, sysadmin, lambda: _sql(dsn, "TRUNCATE bed_staging"))

    assert box["response"].status_code == 200, box["response"].text
    assert run.state == "failed"  # the run's colour: the change did not happen
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["apply"] == "success" and states["outcome"] == "failed"
    change = _change_of(repo, run)
    assert change.state == "rolled_back" and change.failed_at is not None
    assert _steps(repo, change.id)[-5:] == [
        ("apply", "passed"),
        ("verify", "failed"),
        ("revert", "passed"),
        ("verify_after_revert", "passed"),
        ("outcome", "failed"),
    ]
    assert _audit(repo, change.id)[-5:] == [
        ("change.apply", "success"),
        ("change.verify", "failure"),
        ("change.revert", "success"),
        ("change.verify_after_revert", "success"),
        ("change.outcome", "failure"),
    ]
    incident = repo.get_incident(change.incident_id)
    assert (incident.severity, incident.target_id) == ("warn", f"change:{change.id}")
    assert _tables(dsn) == ["bed_staging", "ward_bed"]  # bed_snapshot reverted
    page = Path(change.details["page_path"]).read_text(encoding="utf-8")
    assert "division by zero" in page and "回退" in page


def test_the_requester_approving_its_own_change_is_refused(env, api):  # noqa: F811
    repo, dsn = env
    requester = _client(api, "dag_test")  # the user dag.test() triggers as, a 系统管理员

    run, box = _run(_conf(DEMO_CHANGES[0]), _answer, requester, None)

    assert box["response"].status_code == 200, box["response"].text  # Airflow took the answer
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["check_approval"] == "failed" and states["apply"] == "upstream_failed"
    change = _change_of(repo, run)
    assert change.state == "refused" and change.started_at is None
    approval = repo.change_steps(change.id)[-1]
    assert approval.step == "approval" and "requester" in approval.details["summary_en"]
    assert ("change.approval", "refused") in _audit(repo, change.id)
    assert _tables(dsn) == []


def test_an_unanswered_approval_times_out_and_the_change_is_cancelled(env, api):  # noqa: F811
    repo, dsn = env

    run, box = _run(
        _conf(DEMO_CHANGES[0]), _sweep_timeouts, dag=_dag(response_timeout=timedelta(seconds=3))
    )

    assert box["swept"] >= 1
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["approve"] == "failed" and states["apply"] == "upstream_failed"
    assert states["outcome"] == "failed"  # ran, recorded the cancellation, wrote the page
    change = _change_of(repo, run)
    assert change.state == "cancelled" and change.started_at is None
    assert change.approved_by is None
    assert [s for s, _ in _steps(repo, change.id)][-1] == "approval"
    assert ("change.approval", "refused") in _audit(repo, change.id)
    assert Path(change.details["page_path"]).is_file()
    assert _tables(dsn) == []
