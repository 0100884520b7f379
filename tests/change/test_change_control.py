"""变更管理 faults on real PostgreSQL, a real sshd and a real SMTP
receiver (domain, no scheduler)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hisops.change import service as S
from hisops.change.request import RequestError, from_params
from hisops.inventory.models import Inventory
from hisops.runinfo import RunInfo
from hisops.targets.runner import SshParams, SshRunner

from tests.conftest import REPO

REQUESTER = RunInfo(dag_id="change_request", run_id="manual__chg", triggering_user="operator1")
IN_WINDOW = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 03:00 Asia/Shanghai, inside 01:30-05:30
ADMIN = {"系统管理员"}

DEPLOY = "CREATE TABLE ward_bed (id int PRIMARY KEY, ward text NOT NULL);"
VERIFY = "SELECT id, ward FROM ward_bed WHERE false;"
REVERT = "DROP TABLE ward_bed;"


@pytest.fixture
def target_db(new_db):
    return new_db("chg")


@pytest.fixture
def inv(target_db, tmp_path) -> Inventory:
    backups = tmp_path / "backups"
    backups.mkdir()
    return Inventory.model_validate(
        {
            "version": 1,
            "hospital": "测试医院",
            "maintenance_window": {"start": "01:30", "end": "05:30"},
            "backup_storage": {"path": str(backups)},
            "reports": {"path": str(tmp_path / "reports")},
            "systems": [
                {
                    "id": "outpatient",
                    "name": "门诊系统",
                    "name_en": "Outpatient",
                    "databases": [{"id": "chg_db", "conn_id": "chg_db"}],
                    "hosts": [{"id": "app-host", "ssh_conn_id": "app_ssh"}],
                }
            ],
        },
        context={"base_dir": str(REPO)},
    )


@pytest.fixture
def access(pg, target_db, sshd) -> S.Access:
    def runner_for(host):
        return SshRunner(
            host.id,
            SshParams(
                host=sshd.host,
                port=sshd.port,
                username=sshd.user,
                key_file=str(sshd.client_key),
                connect_timeout=5,
            ),
        )

    return S.Access(dsn_for=lambda db: pg.dsn(target_db), runner_for=runner_for)


def _verified_backup(repo, inv, database_id="chg_db") -> int:
    """A verified backup whose manifest exists (what hisops.backup.trust checks)."""
    folder = Path(inv.backup_storage.path) / f"{database_id}-1"
    folder.mkdir()
    manifest = folder / "manifest.json"
    manifest.write_text('{"files": []}')
    backup_id = repo.register_backup_start(database_id, "outpatient", "database", str(folder))
    repo.complete_backup(
        backup_id, {"files": []}, hashlib.sha256(manifest.read_bytes()).hexdigest(), 1
    )
    repo.mark_backup_verified(backup_id)
    return backup_id


def _sql_params(**over) -> dict:
    return {
        "kind": "sql",
        "title": "病床表",
        "reason": "住院床位管理",
        "impact": "新表，无停机",
        "database_id": "chg_db",
        "deploy_sql": DEPLOY,
        "verify_sql": VERIFY,
        "revert_sql": REVERT,
        **over,
    }


def _through_approval(repo, inv, access, params) -> int:
    change_id = S.open_request(repo, inv, params, REQUESTER)
    S.assess(repo, inv, change_id, access, REQUESTER)
    S.backup_gate(repo, inv, change_id, REQUESTER)
    S.record_approval(
        repo, change_id, REQUESTER, approver="sysadmin", approver_roles=ADMIN, approved=True
    )
    return change_id


def _tables(pg, db) -> list[str]:
    import psycopg2

    conn = psycopg2.connect(pg.dsn(db))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


def _steps(repo, change_id) -> list[tuple[str, str]]:
    return [(s.step, s.state) for s in repo.change_steps(change_id)]


def test_sql_change_succeeds_with_every_step_recorded_and_a_page(
    catalog, inv, access, pg, target_db
):
    _verified_backup(catalog, inv)
    change_id = _through_approval(catalog, inv, access, _sql_params())
    assert _tables(pg, target_db) == []  # the dry run was rolled back

    outcome = S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)

    assert outcome.state == "completed" and _tables(pg, target_db) == ["ward_bed"]
    assert _steps(catalog, change_id) == [
        ("request", "passed"),
        ("assessment", "passed"),
        ("backup", "passed"),
        ("approval", "passed"),
        ("apply", "passed"),
        ("verify", "passed"),
        ("outcome", "passed"),
    ]
    change = catalog.get_change(change_id)
    assert (change.approved_by, change.kind, change.targets) == ("sysadmin", "sql", ["chg_db"])
    assert (
        change.details["request"]["script_sha256"]["deploy"]
        == hashlib.sha256(DEPLOY.encode()).hexdigest()
    )
    verify = catalog.change_steps(change_id)[5].details
    assert (
        verify["details"]["health"]["critical"] == []
    )  # the inspection's checks of the database ran
    actions = [e.action for e in catalog.audit_events() if e.target == f"change:{change_id}"]
    assert set(actions) >= {
        "change.request",
        "change.assessment",
        "change.approval",
        "change.apply",
        "change.verify",
        "change.outcome",
    }
    page = Path(S.publish_page(catalog, inv, change_id))
    assert oct(page.stat().st_mode & 0o777) == "0o600"
    html = page.read_text()
    assert "变更 #" in html and "CREATE TABLE ward_bed" in html and "<script" not in html


COPY_DEPLOY = "CREATE TABLE ward_bed AS SELECT * FROM bed_source;"
COPY_VERIFY = "SELECT 1 / (SELECT count(*) FROM ward_bed);"  # fails when the copy is empty


def _sql(pg, db, statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(pg.dsn(db))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def _copy_change(catalog, inv, access, pg, db, revert: str = REVERT) -> int:
    """Assessed while bed_source has rows (dry run passes); emptied
    before the window (verify fails)."""
    _sql(
        pg,
        db,
        "CREATE TABLE bed_source (id int, ward text); INSERT INTO bed_source VALUES (1, '内科')",
    )
    _verified_backup(catalog, inv)
    change_id = _through_approval(
        catalog,
        inv,
        access,
        _sql_params(deploy_sql=COPY_DEPLOY, verify_sql=COPY_VERIFY, revert_sql=revert),
    )
    _sql(pg, db, "TRUNCATE bed_source")
    return change_id


def test_dry_run_failure_stops_at_the_assessment(catalog, inv, access, pg, target_db):
    change_id = S.open_request(catalog, inv, _sql_params(verify_sql=COPY_VERIFY), REQUESTER)
    with pytest.raises(S.ChangeStopped, match="dry run failed"):
        S.assess(catalog, inv, change_id, access, REQUESTER)
    assert (
        catalog.get_change(change_id).state == "assessment_failed" and _tables(pg, target_db) == []
    )


def test_failing_verify_reverts_and_verifies_again(catalog, inv, access, pg, target_db):
    change_id = _copy_change(catalog, inv, access, pg, target_db)

    outcome = S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)

    assert outcome.state == "rolled_back" and _tables(pg, target_db) == ["bed_source"]
    assert _steps(catalog, change_id)[-5:] == [
        ("apply", "passed"),
        ("verify", "failed"),
        ("revert", "passed"),
        ("verify_after_revert", "passed"),
        ("outcome", "failed"),
    ]
    change = catalog.get_change(change_id)
    assert change.failed_at is not None and change.finished_at >= change.failed_at
    incident = catalog.get_incident(change.incident_id)
    assert (incident.severity, incident.check_id, incident.target_id) == (
        "warn",
        "change.failed",
        f"change:{change_id}",
    )
    assert incident.system_id == "outpatient"  # the target's system: the KPI report attributes it


def test_failed_revert_is_critical_and_supervisors_are_told(
    catalog, inv, access, pg, target_db, mailbox
):
    change_id = _copy_change(
        catalog, inv, access, pg, target_db, revert="DROP TABLE no_such_table;"
    )

    outcome = S.apply_and_verify(
        catalog,
        inv,
        change_id,
        access,
        REQUESTER,
        [mailbox.channel("主管", "critical", "supervisor@hospital.example")],
        now=IN_WINDOW,
    )

    assert outcome.state == "failed_revert" and outcome.notified == ["主管"]
    assert catalog.get_change(change_id).state == "failed_revert"
    assert catalog.get_incident(outcome.incident_id).severity == "critical"
    assert mailbox.subjects("严重 CRITICAL · 变更回退失败")
    assert _tables(pg, target_db) == [
        "bed_source",
        "ward_bed",
    ]  # what the failed revert left behind


def test_approver_who_is_the_requester_is_refused(catalog, inv, access, pg, target_db):
    _verified_backup(catalog, inv)
    change_id = S.open_request(catalog, inv, _sql_params(), REQUESTER)
    S.assess(catalog, inv, change_id, access, REQUESTER)
    S.backup_gate(catalog, inv, change_id, REQUESTER)
    with pytest.raises(S.ChangeStopped, match="requester"):
        S.record_approval(
            catalog, change_id, REQUESTER, approver="operator1", approver_roles=ADMIN, approved=True
        )
    assert catalog.get_change(change_id).state == "refused"
    with pytest.raises(S.ChangeStopped, match="not approved"):
        S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)
    assert _tables(pg, target_db) == []
    refused = [e for e in catalog.audit_events() if e.action == "change.approval"]
    assert refused and refused[0].result == "refused"


def test_approval_timeout_cancels_and_applies_nothing(catalog, inv, access, pg, target_db):
    _verified_backup(catalog, inv)
    change_id = S.open_request(catalog, inv, _sql_params(), REQUESTER)
    S.assess(catalog, inv, change_id, access, REQUESTER)
    S.backup_gate(catalog, inv, change_id, REQUESTER)
    with pytest.raises(S.ChangeStopped, match="timed out"):
        S.record_approval(
            catalog,
            change_id,
            REQUESTER,
            approver=None,
            approver_roles=set(),
            approved=False,
            timed_out=True,
        )
    change = catalog.get_change(change_id)
    assert (
        change.state == "cancelled" and change.started_at is None and _tables(pg, target_db) == []
    )


def test_no_fresh_verified_backup_stops_before_approval(catalog, inv, access):
    change_id = S.open_request(catalog, inv, _sql_params(), REQUESTER)
    S.assess(catalog, inv, change_id, access, REQUESTER)
    with pytest.raises(S.ChangeStopped, match="no verified backup"):
        S.backup_gate(catalog, inv, change_id, REQUESTER)
    assert catalog.get_change(change_id).state == "refused"
    assert [s for s, _ in _steps(catalog, change_id)] == ["request", "assessment", "backup"]


def test_nonexistent_package_fails_the_assessment(catalog, inv, access):
    params = {
        "kind": "package",
        "title": "装一个不存在的包",
        "reason": "测试",
        "impact": "无",
        "host_id": "app-host",
        "package": "hisops-no-such-package-4711",
    }
    change_id = S.open_request(catalog, inv, params, REQUESTER)
    with pytest.raises(S.ChangeStopped, match="simulated install failed"):
        S.assess(catalog, inv, change_id, access, REQUESTER)
    (_, assessment) = catalog.change_steps(change_id)
    assert assessment.state == "failed" and assessment.details["details"]["manager"] == "apt"
    assert catalog.get_change(change_id).state == "assessment_failed"


def test_rejected_config_value_is_found_before_reload_and_nothing_applied(
    catalog, inv, access, pg, target_db
):
    """A line PostgreSQL rejects (here: an earlier hand edit of postgresql.conf) shows up in
    pg_file_settings after ALTER SYSTEM: the change puts
    postgresql.auto.conf back and never reloads."""
    import psycopg2

    _verified_backup(catalog, inv)
    change_id = _through_approval(
        catalog,
        inv,
        access,
        {
            "kind": "pg_config",
            "title": "调整 work_mem",
            "reason": "排序溢出",
            "impact": "reload，无停机",
            "database_id": "chg_db",
            "parameter": "work_mem",
            "value": "8MB",
        },
    )
    conf = Path(pg.datadir) / "postgresql.conf"
    original = conf.read_text()
    conf.write_text(original + "\nmax_wal_size = 'lots'\n")
    try:
        outcome = S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)
    finally:
        conf.write_text(original)
        _sql(
            pg, target_db, "ALTER SYSTEM RESET work_mem"
        )  # whatever happened: leave the cluster as it was
    assert outcome.state == "rolled_back"
    apply = catalog.change_steps(change_id)[4]
    assert apply.step == "apply" and apply.state == "failed"
    assert apply.details["details"]["file_errors"][0]["name"] == "max_wal_size"
    assert apply.details["details"]["reloaded"] is False
    conn = psycopg2.connect(pg.dsn(target_db))
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem' AND sourcefile LIKE "
            "'%postgresql.auto.conf'"
        )
        assert cur.fetchone()[0] == 0  # postgresql.auto.conf is as before
        cur.execute("SHOW work_mem")
        assert cur.fetchone()[0] == "4MB"
    conn.close()


def test_bad_requests_name_the_field():
    base = REPO
    for params, message in (
        ({"kind": "nope"}, "kind: 'nope'"),
        (_sql_params(verify_sql=""), "verify_sql: required"),
        (_sql_params(sql_folder="../etc"), "sql_folder and pasted"),
        (
            {
                **_sql_params(),
                "deploy_sql": "",
                "verify_sql": "",
                "revert_sql": "",
                "sql_folder": "../etc",
            },
            "sql_folder: '../etc'",
        ),
        (
            {
                "kind": "config_file",
                "title": "t",
                "reason": "r",
                "impact": "i",
                "host_id": "h",
                "path": "relative/x.conf",
            },
            "path: 'relative/x.conf' must be an absolute path",
        ),
        (
            {
                "kind": "package",
                "title": "t",
                "reason": "r",
                "impact": "i",
                "host_id": "h",
                "package": "bad;rm -rf /",
            },
            "package: 'bad;rm -rf /'",
        ),
    ):
        with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
            from_params(params, "operator1", base)
