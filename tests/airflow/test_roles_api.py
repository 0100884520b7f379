"""第十三条 — the four roles against the real api-server: one allowed, one refused action each."""

from __future__ import annotations

import httpx
import pytest
from hisops.airflow.access import OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN, USER

pytestmark = pytest.mark.airflow_server


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
