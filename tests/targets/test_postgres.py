"""targets.postgres against the real private cluster: sessions, connect, libpq env, tools, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg2
import pytest
from hisops.targets.errors import TargetUnreachable
from hisops.targets.postgres import (
    PgToolError,
    as_os_user,
    connect,
    dsn_dbname,
    dsn_with,
    first_line,
    installed_tools,
    libpq_env,
    major_of,
    pg_ctl_stop_argv,
    pg_session,
    server_bindir,
    stop_process,
    tool_version,
)


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


# --- connect --------------------------------------------------------------------------------------


def _activity(pg, application_name: str) -> list[tuple]:
    observer = pg_session(pg.dsn(), application_name="hisops-test-observer")
    with observer as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT datname, backend_type FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        )
        return cur.fetchall()


def test_connect_is_named_in_pg_stat_activity_and_autocommit_is_chosen(pg, new_db):
    db = new_db("conn")
    conn = connect(pg.dsn(db), application_name="hisops-test-connect", autocommit=True)
    try:
        assert conn.autocommit is True
        assert _activity(pg, "hisops-test-connect") == [(db, "client backend")]
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (i int)")  # writable: not read-only by default
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] == "0"
    finally:
        conn.close()
    assert _activity(pg, "hisops-test-connect") == []
    plain = connect(pg.dsn(db), application_name="hisops-test-connect")
    try:
        assert plain.autocommit is False
    finally:
        plain.close()


def test_connect_sets_timeouts_and_read_only_on_request(pg):
    conn = connect(
        pg.dsn(),
        application_name="hisops-test-timeouts",
        autocommit=True,
        statement_timeout_ms=300,
        lock_timeout_ms=100,
        read_only=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW lock_timeout")
            assert cur.fetchone()[0] == "100ms"
            with pytest.raises(psycopg2.errors.QueryCanceled):
                cur.execute("SELECT pg_sleep(3)")
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                cur.execute("CREATE TABLE nope (i int)")
    finally:
        conn.close()


def test_connect_raises_the_psycopg2_error_for_callers_to_word():
    from tests.conftest import free_port

    dsn = f"host=127.0.0.1 port={free_port()} dbname=x user=x"
    with pytest.raises(psycopg2.OperationalError) as exc:
        connect(dsn, application_name="hisops-test", connect_timeout=2)
    assert not isinstance(exc.value, TargetUnreachable)
    assert first_line(str(exc.value))


def test_dsn_with_changes_only_what_is_asked(pg):
    changed = dsn_with(pg.dsn("postgres"), "other", port="6543")
    assert dsn_dbname(changed) == "other"
    assert f"password={pg.password}" in changed and "port=6543" in changed
    assert dsn_dbname(dsn_with(changed, host="10.0.0.1")) == "other"


# --- libpq environment ----------------------------------------------------------------------------


WHO_AM_I = "SELECT current_setting('application_name') || ' ' || current_database()"


def test_libpq_env_keeps_the_password_off_the_command_line(pg, new_db):
    db = new_db("env")
    conninfo, env = libpq_env(pg.dsn(db), application_name="hisops-test-psql", connect_timeout=7)
    assert pg.password not in conninfo and "password" not in conninfo
    assert env["PGPASSWORD"] == pg.password and env["PGCONNECT_TIMEOUT"] == "7"
    assert env["PGAPPNAME"] == "hisops-test-psql"
    psql = installed_tools("psql")[-1][1]
    proc = subprocess.run(
        [str(psql), "--no-password", "-At", "-d", conninfo, "-c", WHO_AM_I],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"hisops-test-psql {db}"
    _, passwordless = libpq_env(
        pg.dsn(db).replace(f"password={pg.password}", ""), application_name="x"
    )
    assert passwordless.get("PGPASSWORD") == os.environ.get("PGPASSWORD")  # only ever inherited
    proc = subprocess.run(  # without PGPASSWORD the conninfo alone cannot log in: it has no secret
        [str(psql), "--no-password", "-At", "-d", conninfo, "-c", "SELECT 1"],
        env={k: v for k, v in env.items() if k != "PGPASSWORD"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "password" in proc.stderr


# --- tools ----------------------------------------------------------------------------------------


def test_installed_tools_and_versions_match_the_running_server(pg):
    tools = installed_tools("pg_dump")
    assert tools and tools == sorted(tools)
    with pg_session(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        server_major = int(cur.fetchone()[0]) // 10000
    assert server_major in [major for major, _path in tools]
    for major, path in tools:
        text, found = tool_version(path)
        assert found == major and "(PostgreSQL)" in text
    assert major_of("pg_restore (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)") == 15
    assert major_of("nonsense") == 0
    assert (server_bindir() / "pg_ctl").exists()


def test_installed_tools_in_another_root_and_unreadable_version(tmp_path):
    for major in ("13", "9", "16", "notaversion"):
        (tmp_path / major / "bin").mkdir(parents=True)
    fake = tmp_path / "16" / "bin" / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'not postgres'\n")
    fake.chmod(0o755)
    (tmp_path / "9" / "bin" / "pg_dump").write_text("")
    assert installed_tools("pg_dump", tmp_path) == [
        (9, tmp_path / "9" / "bin" / "pg_dump"),
        (16, fake),
    ]
    assert installed_tools("pg_dump", tmp_path / "missing") == []
    with pytest.raises(PgToolError, match="cannot read the version"):
        tool_version(fake)


def test_server_bindir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HISOPS_PG_BINDIR", str(tmp_path))
    assert server_bindir() == tmp_path


# --- stopping -------------------------------------------------------------------------------------


def test_stop_process_terminates_then_kills(tmp_path):
    polite = subprocess.Popen(["sleep", "60"])
    stop_process(polite)
    assert polite.returncode == -signal.SIGTERM
    ignore_term = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[1], 'w').close(); time.sleep(60)"
    )
    stubborn = subprocess.Popen([sys.executable, "-c", ignore_term, str(tmp_path / "ready")])
    for _ in range(600):  # up to 60 s for the interpreter to start and ignore SIGTERM
        if (tmp_path / "ready").exists() or stubborn.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(stubborn, grace=0.5)
    assert stubborn.returncode == -signal.SIGKILL
    stop_process(None)
    stop_process(stubborn)  # already ended: nothing to do


def test_pg_ctl_stop_argv_stops_a_real_cluster(tmp_path):
    from hisops.devenv.pgcluster import PgCluster

    from tests.conftest import free_port

    cluster = PgCluster(tmp_path / "pgc", free_port())
    cluster.start()
    try:
        argv = pg_ctl_stop_argv(cluster.datadir, mode="immediate")
        assert argv[0] == str(server_bindir() / "pg_ctl") and argv[-1] == "-w"
        proc = subprocess.run(as_os_user(argv, cluster.os_user), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert not cluster.running()
    finally:
        cluster.destroy()
    with pytest.raises(ValueError):
        pg_ctl_stop_argv(tmp_path, mode="now")
    assert "-w" not in pg_ctl_stop_argv(tmp_path, bindir=tmp_path, wait=False)


def test_as_os_user_only_when_root():
    argv = ["pg_ctl", "status"]
    if os.geteuid() == 0:
        assert as_os_user(argv, "postgres") == ["runuser", "-u", "postgres", "--", *argv]
        assert as_os_user(argv, "root") == argv
    else:
        assert as_os_user(argv, "postgres") == argv
