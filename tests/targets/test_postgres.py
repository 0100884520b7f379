"""pg_session against the real private cluster: timeouts, read-only, unreachable."""

from __future__ import annotations

import psycopg2
import pytest
from hisops.targets.errors import TargetUnreachable
from hisops.targets.postgres import pg_session


def test_session_is_read_only_with_statement_timeout(pg):
    with pg_session(pg.dsn(), statement_timeout_ms=200) as conn, conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] == "200ms"
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("SELECT pg_sleep(2)")
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TABLE nope (i int)")


def test_wrong_password_is_unreachable(pg):
    dsn = pg.dsn().replace(f"password={pg.password}", "password=wrong")
    with pytest.raises(TargetUnreachable) as exc, pg_session(dsn, target="db1"):
        pass
    assert "password authentication failed" in exc.value.reason


def test_server_down_is_unreachable():
    from tests.conftest import free_port

    with (
        pytest.raises(TargetUnreachable) as exc,
        pg_session(
            f"host=127.0.0.1 port={free_port()} dbname=x user=x", target="db2", connect_timeout=2
        ),
    ):
        pass
    assert exc.value.target == "db2"
