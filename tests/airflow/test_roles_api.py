"""第十三条 — the role matrix against the real api-server, and every refusal in the audit trail.

Five roles × the actions of the README's table plus clear/re-run of task instances. Each cell
is a real REST call: allowed = a 2xx answer, refused = 403 and an audit event of that user.
"""

from __future__ import annotations

import os

import httpx
import pytest
from hisops.airflow.access import AUDITOR, OPERATOR, SUPER_ADMIN, SYSTEM_ADMIN, USER
from hisops.catalog.repository import CatalogRepository

from tests.airflow.test_localhost import listening

pytestmark = pytest.mark.airflow_server

ROUTINE, RESTORE = "hisops_selfcheck", "restore_database"
ROLES = (SUPER_ADMIN, SYSTEM_ADMIN, OPERATOR, USER, AUDITOR)


def _clear(dag_id: str) -> tuple[str, str, dict]:
    return (
        "POST",
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        {"dry_run": False, "only_failed": False},
    )


# action → (method, path, body), what the audit trail calls it when refused, who may
ACTIONS: dict[str, tuple[tuple[str, str, dict | None], tuple[str, str], set[str]]] = {
    "see DAGs and runs": (
        ("GET", f"/api/v2/dags/{ROUTINE}/dagRuns", None),
        ("api.refused", f"dag:{ROUTINE}"),
        {SUPER_ADMIN, SYSTEM_ADMIN, OPERATOR, USER},
    ),
    "O&M centre, reports": (("GET", "/hisops/", None), ("centre.refused", "/hisops/"), set(ROLES)),
    "trigger routine DAG": (
        ("POST", f"/api/v2/dags/{ROUTINE}/dagRuns", {"logical_date": None}),
        ("dag.trigger", f"dag:{ROUTINE}"),
        {SUPER_ADMIN, SYSTEM_ADMIN, OPERATOR},
    ),
    "clear/re-run routine tasks": (
        _clear(ROUTINE),
        ("task.clear", f"dag:{ROUTINE}"),
        {SUPER_ADMIN, SYSTEM_ADMIN, OPERATOR},
    ),
    "trigger restore": (
        ("POST", f"/api/v2/dags/{RESTORE}/dagRuns", {"logical_date": None}),
        ("dag.trigger", f"dag:{RESTORE}"),
        {SUPER_ADMIN, SYSTEM_ADMIN},
    ),
    "clear/re-run restore tasks": (
        _clear(RESTORE),
        ("task.clear", f"dag:{RESTORE}"),
        {SUPER_ADMIN, SYSTEM_ADMIN},
    ),
    "pause restore": (
        ("PATCH", f"/api/v2/dags/{RESTORE}", {"is_paused": False}),
        ("dag.unpause", f"dag:{RESTORE}"),
        {SUPER_ADMIN, SYSTEM_ADMIN},
    ),
    "connections": (
        ("GET", "/api/v2/connections", None),
        ("api.refused", "/api/v2/connections"),
        {SUPER_ADMIN, SYSTEM_ADMIN},
    ),
    "users and roles": (
        ("GET", "/auth/fab/v1/users", None),
        ("api.refused", "/auth/fab/v1/users"),
        {SUPER_ADMIN},
    ),
    "audit trail": (
        ("GET", "/hisops/audit", None),
        ("centre.refused", "/hisops/audit"),
        {SUPER_ADMIN, SYSTEM_ADMIN, AUDITOR},
    ),
}


@pytest.fixture(scope="module")
def repo(catalog_url):
    r = CatalogRepository.from_url(catalog_url)
    yield r
    r.dispose()


@pytest.fixture(scope="module")
def runs(login):
    """A run of each DAG (created by the system administrator) so clears have task instances."""
    admin = login(SYSTEM_ADMIN)
    for dag_id, conf in ((ROUTINE, {}), (RESTORE, {})):
        resp = admin.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert resp.status_code == 200, resp.text
    return True


def _call(client: httpx.Client, request: tuple[str, str, dict | None]) -> int:
    method, path, body = request
    return client.request(method, path, json=body).status_code


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(login, runs, repo, role):
    client = login(role)
    user = client.hisops_user  # type: ignore[attr-defined]
    outcome = {name: _call(client, request) for name, (request, _, _) in ACTIONS.items()}
    wrong = {
        name: code
        for name, code in outcome.items()
        if (not 200 <= code < 300 if role in ACTIONS[name][2] else code != 403)
    }
    assert not wrong, f"{role}: unexpected answers {wrong}"
    assert any(role in who for _, _, who in ACTIONS.values())  # one allowed per role at least
    refused = [name for name in ACTIONS if role not in ACTIONS[name][2]]
    events = {
        (e.action, e.target) for e in repo.audit_events(limit=1000, actor=user, result="refused")
    }
    missing = [name for name in refused if ACTIONS[name][1] not in events]
    assert not missing, f"{role}: refused but not in the audit trail: {missing} (have {events})"


def test_operator_may_do_nothing_more_on_production_dags(login, runs, repo):
    """Clearing is granted through the global "DAG Runs"/"Task Instances" edit: prove it does
    not reach a DAG without operator_dag() access — mark, delete, pause, clear one run."""
    op, admin = login(OPERATOR), login(SYSTEM_ADMIN)
    run_id = admin.get(f"/api/v2/dags/{RESTORE}/dagRuns").json()["dag_runs"][0]["dag_run_id"]
    base = f"/api/v2/dags/{RESTORE}/dagRuns/{run_id}"
    assert op.patch(base, json={"state": "failed"}).status_code == 403
    assert op.delete(base).status_code == 403
    assert op.post(f"{base}/clear", json={"dry_run": False}).status_code == 403
    assert op.patch(f"/api/v2/dags/{RESTORE}", json={"is_paused": True}).status_code == 403
    assert op.post(
        "/api/v2/dags/~/clearDagRuns",
        json={"dag_runs": [{"dag_id": RESTORE, "dag_run_id": run_id}], "dry_run": False},
    ).status_code in (403, 404)
    routine = admin.get(f"/api/v2/dags/{ROUTINE}/dagRuns").json()["dag_runs"][0]["dag_run_id"]
    resp = op.post(
        f"/api/v2/dags/{ROUTINE}/clearTaskInstances",
        json={"dag_run_id": routine, "dry_run": False, "only_failed": False},
    )
    assert resp.status_code == 200, resp.text
    actions = {(e.action, e.result) for e in repo.audit_events(actor=op.hisops_user, limit=100)}
    assert {
        ("dag_run.mark", "refused"),
        ("dag_run.delete", "refused"),
        ("dag_run.clear", "refused"),
        ("dag.pause", "refused"),
        ("task.clear", "success"),
    } <= actions


def test_logins_and_user_changes_are_audited(login, api, repo):
    assert (
        httpx.post(f"{api}/auth/token", json={"username": "nobody", "password": "x"}).status_code
        == 401
    )
    assert httpx.get(f"{api}/api/v2/connections").status_code == 401
    httpx.post(f"{api}/auth/login/", data={"username": "ui_nobody", "password": "x"})  # FAB's form
    admin = login(SUPER_ADMIN)
    resp = admin.post(
        "/auth/fab/v1/users",
        json={
            "username": "new_nurse",
            "first_name": "N",
            "last_name": "N",
            "email": "n@hisops.invalid",
            "password": "S3cret-pass!",
            "roles": [{"name": USER}],
        },
    )
    assert resp.status_code in (200, 201), resp.text
    resp = admin.patch(
        "/auth/fab/v1/users/new_nurse",
        json={"roles": [{"name": OPERATOR}]},
        params={"update_mask": "roles"},
    )
    assert resp.status_code == 200, resp.text
    events = repo.audit_events(limit=1000)
    failed = [e for e in events if e.action == "auth.login" and e.actor == "nobody"]
    assert failed and failed[0].result == "refused" and failed[0].source == "127.0.0.1"
    assert any(
        e.action == "auth.login" and e.result == "success" and e.actor == admin.hisops_user
        for e in events
    )
    assert any(e.action == "api.refused" and e.actor == "anonymous" for e in events)
    ui = [e for e in events if e.action == "auth.login" and e.actor == "ui_nobody"]
    assert ui and ui[0].result == "refused" and ui[0].details["via"] == "ui"
    created = [e for e in events if e.action == "user.create" and e.target == "user:new_nurse"]
    assert created and created[0].actor == admin.hisops_user and created[0].result == "success"
    assert created[0].details["password"] == "***"
    assert any(e.action == "user.update" and e.target == "user:new_nurse" for e in events)


def test_api_server_listens_on_loopback_only(api):
    addresses = listening(int(os.environ["AIRFLOW__API__PORT"]))
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, not 0.0.0.0 / ::
