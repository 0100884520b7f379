"""`hisops …` commands run as ops staff run them (subprocesses, real PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from hisops.catalog.migrate import current, head

HISOPS = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "hisops")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HISOPS, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )


def test_catalog_upgrade_with_url(pg, new_db):
    db = new_db("cli")
    proc = run("catalog", "upgrade", "--url", pg.sqlalchemy_url(db))
    assert proc.returncode == 0, proc.stderr
    assert current(pg.sqlalchemy_url(db)) == head()


def test_catalog_upgrade_from_the_airflow_connection(pg, new_db):
    db = new_db("cli")
    conn = json.dumps(
        {
            "conn_type": "postgres",
            "host": pg.host,
            "port": pg.port,
            "login": pg.user,
            "password": pg.password,
            "schema": db,
        }
    )
    proc = run("catalog", "upgrade", AIRFLOW_CONN_HISOPS_CATALOG=conn)
    assert proc.returncode == 0, proc.stderr
    assert current(pg.sqlalchemy_url(db)) == head()


def test_synth_generate_refuses_a_non_empty_database_without_traceback(pg, new_db):
    db = new_db("cli")
    assert run("synth", "generate", "--dsn", pg.dsn(db), "--scale", "0.01").returncode == 0
    again = run("synth", "generate", "--dsn", pg.dsn(db), "--scale", "0.01")
    assert again.returncode == 1 and "already has HIS tables" in again.stderr
    assert "Traceback" not in again.stderr


def test_pools_sync_is_idempotent(airflow_db):
    from hisops.airflow.pools import POOLS

    first, second = run("pools", "sync"), run("pools", "sync")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for name in POOLS:
        assert f"pool {name}: exists" in second.stdout
