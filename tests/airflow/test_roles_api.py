"""第十三条 — the four roles against the real api-server: one allowed, one refused action each."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest
from hisops.airflow.access import OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN, USER

pytestmark = pytest.mark.airflow_server


@pytest.fixture(scope="module")
def api(airflow_db, tmp_path_factory):
    """Parsed DAGs (with their access_control synced) and a running api-server."""
    subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = os.environ["AIRFLOW__API__PORT"]
    log = (tmp_path_factory.mktemp("api") / "api-server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", port, "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, f"api-server did not start, see {log.name}"
        time.sleep(1)
    yield base
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def login(api):
    from hisops.airflow.roles import ensure_user

    tokens: dict[str, str] = {}

    def as_role(role: str) -> httpx.Client:
        if role not in tokens:
            user, password = f"u{secrets.token_hex(4)}", secrets.token_urlsafe(12)
            ensure_user(user, role, password)
            resp = httpx.post(f"{api}/auth/token", json={"username": user, "password": password}, timeout=60)
            assert resp.status_code == 201, resp.text
            tokens[role] = resp.json()["access_token"]
        return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=60)

    return as_role


def trigger(client: httpx.Client, dag_id: str) -> int:
    return client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}).status_code


def test_user_reads_but_cannot_trigger(login):
    c = login(USER)
    assert c.get("/api/v2/dags/hisops_selfcheck").status_code == 200
    assert trigger(c, "hisops_selfcheck") == 403


def test_operator_triggers_routine_dag_but_not_connections(login):
    c = login(OPERATOR)
    assert trigger(c, "hisops_selfcheck") == 200
    assert c.get("/api/v2/connections").status_code == 403


def test_system_admin_manages_connections_but_not_users(login):
    c = login(SYSTEM_ADMIN)
    assert c.get("/api/v2/connections").status_code == 200
    assert c.get("/auth/fab/v1/users").status_code == 403


def test_super_admin_manages_users_and_bad_credentials_are_refused(login, api):
    c = login(SUPER_ADMIN)
    resp = c.get("/auth/fab/v1/users")
    assert resp.status_code == 200 and resp.json()["total_entries"] >= 1
    assert httpx.post(f"{api}/auth/token", json={"username": "nobody", "password": "x"}).status_code == 401
    assert httpx.get(f"{api}/api/v2/connections").status_code == 401
