"""The Airflow listener: runs and task states from outside the api-server reach the audit trail.

Real Airflow throughout: ``dag.test()`` in this process (task runner + run state), the real
scheduler started for a few loops after ``airflow dags trigger`` on the CLI, and the real
api-server (hisops plugin) for the "never twice" rule with the audit middleware.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys

import pytest
from hisops.audit.verify import verify_chain
from hisops.catalog.repository import CatalogRepository
from hisops.roles import SUPER_ADMIN

from tests.conftest import pg_conn_json
from tests.dags.test_hisops_selfcheck import _run as run_selfcheck
from tests.dags.test_hisops_selfcheck import selfcheck_env  # noqa: F401 - a fixture

ROUTINE = "hisops_selfcheck"


@pytest.fixture
def repo(catalog_url):
    r = CatalogRepository.from_url(catalog_url)
    yield r
    r.dispose()


def _events(repo: CatalogRepository, run_id: str) -> list:
    return sorted(
        (e for e in repo.audit_events(limit=500) if e.run_id == run_id), key=lambda e: e.seq
    )


def _airflow(*args: str, env: dict | None = None, timeout: int = 300) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def test_dag_test_run_and_a_failed_task_are_recorded(
    selfcheck_env,  # noqa: F811 - the imported fixture
    tmp_path,
    monkeypatch,
):
    repo = selfcheck_env
    run = run_selfcheck(tmp_path, monkeypatch, with_bad_db=True)
    assert run.state == "failed"  # its verdict task fails (retries=0): one unreachable database
    events = _events(repo, run.run_id)
    by_action = {e.action: e for e in events}
    failed = by_action["task.failed"]
    assert failed.target == f"task:hisops_selfcheck/{run.run_id}/verdict"
    assert failed.result == "failure" and "d_bad" in failed.reason
    finish = by_action["dag_run.finish"]
    assert finish.result == "failure" and finish.details["triggered_by"] == "test"
    assert finish.source and finish.details["recorded_by"] == "listener"
    assert events[-1] == finish and by_action["selfcheck"].seq < finish.seq
    assert [e.action for e in events].count("task.failed") == 1  # successes: no row each
    assert verify_chain(repo).ok


def test_cli_trigger_and_scheduler_start_are_recorded(api, pg, catalog_url, repo):
    env = {
        **os.environ,
        "AIRFLOW_CONN_HISOPS_CATALOG": pg_conn_json(pg, catalog_url.rsplit("/")[-1]),
    }
    # the scheduler starts the run but never hands its tasks to an executor (no pool slot)
    _airflow("pools", "set", "default_pool", "0", "listener test: no task runs", env=env)
    try:
        _airflow("dags", "unpause", ROUTINE, env=env)
        run_id = f"manual__listener_{os.getpid()}"
        _airflow("dags", "trigger", ROUTINE, "--run-id", run_id, env=env)
        assert not _events(repo, run_id)  # the CLI wrote to the metadata DB, nothing else yet
        _airflow("scheduler", "--num-runs", "3", env=env, timeout=400)
        events = _events(repo, run_id)
        assert [e.action for e in events][:2] == ["dag.trigger", "dag_run.start"]
        trigger = events[0]
        assert trigger.actor == getpass.getuser() and trigger.details["triggered_by"] == "cli"
        assert trigger.target == f"dag_run:{ROUTINE}/{run_id}" and trigger.result == "success"
        assert events[1].details["msg"] == "started"
    finally:
        _airflow("dags", "pause", ROUTINE, env=env)
        _airflow("pools", "set", "default_pool", "128", "Default pool", env=env)


def test_a_mark_through_the_api_server_is_recorded_once(api, login, repo):
    admin = login(SUPER_ADMIN)
    run_id = f"manual__mark_{os.getpid()}"
    resp = admin.post(
        f"/api/v2/dags/{ROUTINE}/dagRuns", json={"logical_date": None, "dag_run_id": run_id}
    )
    assert resp.status_code == 200, resp.text
    resp = admin.patch(f"/api/v2/dags/{ROUTINE}/dagRuns/{run_id}", json={"state": "failed"})
    assert resp.status_code == 200, resp.text
    triggers = [e for e in repo.audit_events(action="dag.trigger") if e.actor == admin.hisops_user]
    assert triggers and triggers[0].details.get("dag_run_id") == run_id  # the middleware's
    events = _events(repo, run_id)
    assert [(e.action, e.actor) for e in events] == [("dag_run.mark", admin.hisops_user)]
    # the listener fired inside the request (on_dag_run_failed) and stayed silent
