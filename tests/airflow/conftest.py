"""A real Airflow api-server (FAB auth, hisops plugin) and logins per
role, for this folder's tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest
from hisops.catalog.migrate import upgrade


@pytest.fixture(scope="module")
def catalog_url(pg) -> str:
    """A migrated catalog database that the api-server (plugin) and the tests share."""
    name = f"catalog_api_{secrets.token_hex(4)}"
    pg.create_database(name)
    upgrade(pg.sqlalchemy_url(name))
    return pg.sqlalchemy_url(name)


@pytest.fixture(scope="module")
def api(airflow_db, catalog_url, pg, tmp_path_factory):
    """Parsed DAGs (with their access_control synced) and a running api-server."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = os.environ["AIRFLOW__API__PORT"]
    log = (tmp_path_factory.mktemp("api") / "api-server.log").open("wb")
    dbname = catalog_url.rsplit("/", 1)[1]
    env = {
        **os.environ,
        "AIRFLOW_CONN_HISOPS_CATALOG": (
            f'{{"conn_type": "postgres", "host": "{pg.host}", "port": {pg.port}, "login": '
            f'"{pg.user}", "password": "{pg.password}", "schema": "{dbname}"}}'
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--port", port, "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (
            f"api-server did not start, see {log.name}"
        )
        time.sleep(1)
    yield base
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def login(api):
    from hisops.airflow.roles import ensure_user

    tokens: dict[str, str] = {}
    users: dict[str, str] = {}

    def as_role(role: str) -> httpx.Client:
        if role not in tokens:
            user, password = f"u{secrets.token_hex(4)}", secrets.token_urlsafe(12)
            ensure_user(user, role, password)
            resp = httpx.post(
                f"{api}/auth/token", json={"username": user, "password": password}, timeout=60
            )
            assert resp.status_code == 201, resp.text
            tokens[role] = resp.json()["access_token"]
            users[role] = user
        client = httpx.Client(
            base_url=api, headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=60
        )
        client.hisops_user = users[role]  # type: ignore[attr-defined]
        return client

    return as_role
