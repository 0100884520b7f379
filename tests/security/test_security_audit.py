"""安全审计 against the real cluster (with the real pgaudit) and a real local host script."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hisops.catalog.records import FindingRecord
from hisops.security import db_checks, host_checks
from hisops.security.baseline import accept_drift
from hisops.security.run import audit_database, audit_host
from hisops.targets.postgres import pg_session
from hisops.targets.runner import LocalRunner


class _Db:
    def __init__(self, id_: str) -> None:
        self.id = id_


class _Host:
    def __init__(self, id_: str, logs: list[str]) -> None:
        self.id, self.logs = id_, [type("L", (), {"path": p})() for p in logs]


def _by_check(findings: list[FindingRecord]) -> dict[str, FindingRecord]:
    return {f.check_id: f for f in findings}


@pytest.fixture
def weak_db(pg, new_db):
    """A database with the weaknesses the audit must find."""
    name = new_db("sec")
    pg.execute("CREATE TABLE public.patient_note (id int)", dbname=name)
    pg.execute("GRANT SELECT ON public.patient_note TO PUBLIC", dbname=name)
    pg.execute(
        "CREATE FUNCTION public.peek() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        dbname=name,
    )
    return name


def test_database_checks_find_weaknesses_with_the_real_pgaudit(pg, weak_db, catalog):
    findings = _by_check(audit_database(catalog, _Db("his_sec"), "s1", pg.dsn(weak_db), "tester"))
    assert findings["security.public_grants"].severity == "warn"
    assert "public.patient_note (SELECT)" in findings["security.public_grants"].details["objects"]
    assert findings["security.definer_search_path"].details["functions"] == ["public.peek()"]
    assert findings["security.pgaudit"].severity == "warn"
    assert (
        "pgaudit.log" in findings["security.pgaudit"].message_en
    )  # loaded (preload) but not configured
    assert findings["security.ssl"].severity == "warn"  # the private cluster has no TLS
    assert findings["security.hba"].severity == "ok"  # initdb --auth=scram-sha-256
    assert findings["security.password_encryption"].severity == "ok"
    assert (
        findings["security.connection_role"].severity == "warn"
    )  # the suite connects as superuser
    assert findings["security.pgaudit"].details["clause"].startswith("8.1.4.3")
    pg.execute(f"ALTER DATABASE \"{weak_db}\" SET pgaudit.log = 'ddl, role, write'")
    again = _by_check(audit_database(catalog, _Db("his_sec"), "s1", pg.dsn(weak_db), "tester"))
    assert again["security.pgaudit"].severity == "ok"


def test_role_drift_is_reported_with_since_and_acceptance_is_audited(pg, weak_db, catalog):
    first = _by_check(audit_database(catalog, _Db("his_drift"), "s1", pg.dsn(weak_db), "tester"))
    assert first["security.role_attributes"].severity == "ok"  # first baseline
    role = f"drift_{weak_db[-6:]}"
    pg.execute(f"CREATE ROLE {role} LOGIN CREATEROLE")
    try:
        second = _by_check(
            audit_database(catalog, _Db("his_drift"), "s1", pg.dsn(weak_db), "tester")
        )
        drift = second["security.role_attributes"]
        assert drift.severity == "warn" and f"+{role}" in drift.message_en
        assert (
            drift.details["drift_since"] and drift.details["drift"]["added"][role]["rolcreaterole"]
        )
        assert catalog.security_baseline("his_drift", "roles").drift_since is not None
        assert accept_drift(catalog, "his_drift", "roles", by="李主任", reason="变更单 CR-42")
        events = catalog.audit_events(action="security.baseline.accept", actor="李主任")
        assert events and events[0].reason == "变更单 CR-42" and events[0].result == "success"
        third = _by_check(
            audit_database(catalog, _Db("his_drift"), "s1", pg.dsn(weak_db), "tester")
        )
        assert third["security.role_attributes"].severity == "ok"
    finally:
        pg.execute(f"DROP ROLE {role}")


def test_unreachable_database_is_a_finding(catalog):
    findings = audit_database(
        catalog, _Db("gone"), "s1", "host=127.0.0.1 port=1 dbname=x user=x", "t"
    )
    assert [f.severity for f in findings] == ["check_error"]


def test_snapshot_reads_hba_rules(pg, weak_db):
    with pg_session(pg.dsn(weak_db)) as conn:
        snap = db_checks.collect(conn, "x")
    assert snap.hba and all(r["method"] == "scram-sha-256" for r in snap.hba)


def test_host_checks_count_failed_logins_by_user_and_source(tmp_path, catalog):
    log = tmp_path / "server.log"
    lines = [
        '2026-12-01 08:00:00 CST [1] FATAL:  password authentication failed for user "his"'
    ] * 12
    lines += [
        '2026-12-01 08:01:00 CST [2] FATAL:  no pg_hba.conf entry for host "10.1.2.3", user "x", '
        'database "y", no encryption'
    ]
    log.write_text("\n".join(lines) + "\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "open.txt").write_text("x")
    os.chmod(shared / "open.txt", 0o666)
    findings = _by_check(
        audit_host(
            catalog,
            _Host("h1", [str(tmp_path / "*.log")]),
            "s1",
            LocalRunner("h1"),
            "tester",
            [str(shared)],
        )
    )
    failed = findings["security.failed_logins"]
    assert failed.severity == "warn" and failed.details["by_user_source"]["his@?"] == 12
    assert failed.details["by_user_source"]["?@10.1.2.3"] == 1
    assert findings["security.world_writable"].details["paths"] == [str(shared / "open.txt")]
    assert findings["security.sudoers"].severity == "ok"  # first baseline
    assert findings["security.sshd"].severity in ("ok", "warn", "critical")


def test_parse_sshd_and_sudoers_output():
    snap = host_checks.parse(
        "h",
        "SSHD permitrootlogin yes\nSSHD passwordauthentication yes\nSUDO abc /etc/sudoers\nDONE\n",
    )
    found = _by_check(host_checks.evaluate(snap))
    assert found["security.sshd"].severity == "critical" and snap.sudoers == {"/etc/sudoers": "abc"}
    assert host_checks.evaluate(host_checks.parse("h", ""))[0].severity == "check_error"


def test_report_is_chinese_grouped_by_clause(tmp_path, pg, weak_db, catalog):
    from hisops.inventory.loader import load_inventory
    from hisops.report.security import write_report
    from hisops.runinfo import RunInfo

    inv = load_inventory(
        Path(__file__).resolve().parents[2] / "inventory" / "hospital.example.yaml"
    )
    findings = audit_database(catalog, _Db("his_sec"), "s1", pg.dsn(weak_db), "tester")
    run = RunInfo(
        dag_id="security_audit",
        run_id="manual__1",
        run_type="manual",
        logical_date=None,
        run_after=None,
        triggering_user="zhang",
    )
    path = write_report(tmp_path / "reports", inv, run, findings)
    text = path.read_text()
    assert "安全审计报告" in text and "8.1.4.2 访问控制" in text and "public.peek()" in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _pg_fail(user: str, host: str | None = None) -> str:
    where = (
        f'no pg_hba.conf entry for host "{host}", user "{user}", database "y"'
        if host
        else f'password authentication failed for user "{user}"'
    )
    return f"2026-12-01 08:00:00 CST [1] FATAL:  {where}\n"


def test_failed_logins_are_read_from_the_last_offset_through_the_log_scanner(tmp_path, catalog):
    """Each audit counts only the lines added since the last one (offsets in the catalog),
    including the rest of a file rotated away since (found by its inode)."""
    logs = tmp_path / "pg"
    logs.mkdir()
    log = logs / "server.log"
    log.write_text(_pg_fail("his") * 12)
    host = _Host("h_off", [str(logs / "*.log")])

    def failed(run_id: int) -> FindingRecord:
        found = audit_host(catalog, host, "s1", LocalRunner("h_off"), "t", [], run_id=run_id)
        return _by_check(found)["security.failed_logins"]

    first = failed(1)
    assert first.severity == "warn" and first.details["by_user_source"] == {"his@?": 12}
    assert failed(2).details["by_user_source"] == {}  # nothing new: nothing counted twice
    assert failed(2).details["by_user_source"] == {}  # a retry of run 2 re-reads the same (none)
    with log.open("a") as fh:
        fh.write(_pg_fail("x", "10.9.9.9") * 3 + "2026-12-01 LOG:  checkpoint starting\n")
    assert failed(3).details["by_user_source"] == {"?@10.9.9.9": 3}
    assert failed(3).details["by_user_source"] == {"?@10.9.9.9": 3}  # retried run: same lines
    with log.open("a") as fh:
        fh.write(_pg_fail("late") * 2)
    log.rename(logs / "server.log.1")  # rotated: *.log no longer lists it
    log.write_text(_pg_fail("new"))
    assert failed(4).details["by_user_source"] == {"late@?": 2, "new@?": 1}
    assert catalog.log_offsets("security:h_off", catalog_reader(catalog, "security:h_off"))


def catalog_reader(catalog, key: str) -> str:
    from sqlalchemy import text

    with catalog.engine.connect() as conn:
        return conn.execute(
            text("SELECT reader FROM hisops.log_offset WHERE host_id = :h LIMIT 1"), {"h": key}
        ).scalar_one()


def test_failed_ssh_logins_by_user_and_source(tmp_path):
    auth = tmp_path / "auth.log"
    auth.write_text(
        "Dec  1 08:00:01 his-app sshd[9]: Failed password for root from 203.0.113.7 port 2 ssh2\n"
        * 11
        + "Dec  1 08:00:02 his-app sshd[9]: Invalid user admin from 198.51.100.2 port 4\n"
        + "Dec  1 08:00:03 his-app sshd[9]: Accepted publickey for ops from 10.0.0.5 port 5\n"
    )
    snap, offsets = host_checks.collect(LocalRunner("h"), "h", [], [], None, [str(auth)])
    assert snap.ssh_failed == {"root@203.0.113.7": 11, "admin@198.51.100.2": 1}
    assert offsets[str(auth)][1] == auth.stat().st_size  # remembered: the next audit starts here
    found = _by_check(host_checks.evaluate(snap))["security.ssh_failed_logins"]
    assert found.severity == "warn" and found.value == 11
    again, _ = host_checks.collect(LocalRunner("h"), "h", [], [], offsets, [str(auth)])
    assert again.ssh_failed == {}


def test_an_unreadable_log_is_a_check_error_not_no_failed_logins():
    snap = host_checks.parse("h", "DONE\n")
    snap.pg_problems.append("/var/log/postgresql/x.log: not readable")  # as the listing says
    found = _by_check(host_checks.evaluate(snap))["security.failed_logins"]
    assert found.severity == "check_error" and found.details["unread_logs"]
    assert "adm" in found.suggestion_en and "not readable" in found.message_en
    ssh = _by_check(host_checks.evaluate(snap))["security.ssh_failed_logins"]
    assert ssh.severity == "ok"  # the auth log was read: none failed
