"""变更管理: a PostgreSQL parameter that needs a restart (pending_restart), on a private cluster of
its own (the test restarts it): a planned restart with pg_ctl when the request allows one inside the
window, else recorded as pending restart and the requester told (a real SMTP receiver)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from hisops.change import service as S
from hisops.devenv.pgcluster import PgCluster, find_pg_bindir
from hisops.inventory.models import Inventory
from hisops.runinfo import RunInfo
from hisops.targets.runner import LocalRunner

from tests.conftest import REPO, TEST_HOME, free_port
from tests.tune.conftest import verified_backup

REQUESTER = RunInfo(dag_id="change_request", run_id="manual__rs", triggering_user="operator1")
IN_WINDOW = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 03:00 Asia/Shanghai, inside 01:30-05:30
DB = "ward"


@pytest.fixture
def server() -> Iterator[PgCluster]:
    """A private cluster for this test only (max_connections = 200 from its postgresql.conf)."""
    cluster = PgCluster(TEST_HOME / f"pg-rs-{uuid.uuid4().hex[:8]}", free_port())
    cluster.start()
    cluster.create_database(DB)
    yield cluster
    cluster.destroy()


def _inventory(server: PgCluster, tmp_path, with_server: bool = True) -> Inventory:
    database = {"id": "ward_db", "conn_id": "ward_db"}
    system = {"id": "inpatient", "name": "住院系统", "name_en": "Inpatient"}
    if with_server:
        database["server"] = "pg-ward"
        system["servers"] = [
            {
                "id": "pg-ward",
                "conn_id": "ward_db",
                "data_directory": str(server.datadir),
                "pg_bindir": str(find_pg_bindir()),
            }
        ]
    return Inventory.model_validate(
        {
            "version": 1,
            "hospital": "测试医院",
            "maintenance_window": {"start": "01:30", "end": "05:30"},
            "backup_storage": {"path": str(tmp_path / "backups")},
            "reports": {"path": str(tmp_path / "reports")},
            "systems": [{**system, "databases": [database]}],
        },
        context={"base_dir": str(REPO)},
    )


def _access(server: PgCluster) -> S.Access:
    return S.Access(dsn_for=lambda _db: server.dsn(DB), runner_for=lambda h: LocalRunner(h.id))


def _approved(catalog, inv, access, tmp_path, restart_allowed: bool) -> int:
    verified_backup(catalog, "ward_db", tmp_path / "backups" / "b1", "inpatient")
    params = {
        "kind": "pg_config",
        "title": "调整最大连接数",
        "reason": "连接池已改小",
        "impact": "需重启数据库（约 10 秒）",
        "database_id": "ward_db",
        "parameter": "max_connections",
        "value": "150",
        "restart_allowed": restart_allowed,
    }
    change_id = S.open_request(catalog, inv, params, REQUESTER)
    S.assess(catalog, inv, change_id, access, REQUESTER)
    S.backup_gate(catalog, inv, change_id, REQUESTER)
    S.record_approval(
        catalog,
        change_id,
        REQUESTER,
        approver="sysadmin",
        approver_roles={"系统管理员"},
        approved=True,
    )
    return change_id


def _setting(server: PgCluster) -> tuple[str, bool, str]:
    conn = psycopg2.connect(server.dsn(DB))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT setting, pending_restart, pg_postmaster_start_time()::text FROM pg_settings "
            "WHERE name = 'max_connections'"
        )
        row = cur.fetchone()
    conn.close()
    return row


def _steps(catalog, change_id) -> list[tuple[str, str]]:
    return [(s.step, s.state) for s in catalog.change_steps(change_id)]


def test_restart_allowed_in_the_window_restarts_with_pg_ctl_and_verifies(catalog, server, tmp_path):
    inv, access = _inventory(server, tmp_path), _access(server)
    change_id = _approved(catalog, inv, access, tmp_path, restart_allowed=True)
    _, _, started_before = _setting(server)

    outcome = S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)

    assert outcome.state == "completed"
    setting, pending, started_after = _setting(server)
    assert (setting, pending) == ("150", False) and started_after != started_before
    assert _steps(catalog, change_id)[-4:] == [
        ("apply", "passed"),
        ("restart", "passed"),
        ("verify", "passed"),
        ("outcome", "passed"),
    ]
    restart = catalog.change_steps(change_id)[-3].details["details"]
    assert restart["restarted"] is True and restart["exit_code"] == 0
    assert restart["postmaster_start_before"] == started_before
    assert restart["postmaster_start_after"] == started_after
    audited = [e for e in catalog.audit_events() if e.action == "change.restart"]
    assert [(e.target, e.result) for e in audited] == [(f"change:{change_id}", "success")]
    assert catalog.get_change(change_id).state == "completed"


def test_restart_not_allowed_is_recorded_pending_and_the_requester_told(
    catalog, server, tmp_path, mailbox
):
    inv, access = _inventory(server, tmp_path), _access(server)
    change_id = _approved(catalog, inv, access, tmp_path, restart_allowed=False)
    _, _, started_before = _setting(server)

    outcome = S.apply_and_verify(
        catalog,
        inv,
        change_id,
        access,
        REQUESTER,
        [mailbox.channel("运维", "warn", "dba@hospital.example")],
        now=IN_WINDOW,
    )

    assert outcome.state == "pending_restart" and outcome.notified == ["运维"]
    assert _setting(server) == ("200", True, started_before)  # not restarted, value waiting
    assert _steps(catalog, change_id)[-4:] == [
        ("apply", "passed"),
        ("restart", "passed"),
        ("verify", "passed"),
        ("outcome", "passed"),
    ]
    restart = catalog.change_steps(change_id)[-3].details
    assert restart["details"]["restarted"] is False and "未允许" in restart["summary_zh"]
    assert catalog.get_change(change_id).state == "pending_restart"
    [subject] = mailbox.subjects("变更待重启 change pending restart")
    assert "operator1" in subject
    page = S.publish_page(catalog, inv, change_id)
    assert "待重启" in Path(page).read_text(encoding="utf-8")


def test_no_server_in_the_inventory_means_no_restart(catalog, server, tmp_path):
    """Allowed and inside the window, but the inventory does not say which server (and data
    directory) the database lives on: hisops restarts nothing it cannot name."""
    inv, access = _inventory(server, tmp_path, with_server=False), _access(server)
    change_id = _approved(catalog, inv, access, tmp_path, restart_allowed=True)

    outcome = S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)

    assert outcome.state == "pending_restart"
    assert _setting(server)[:2] == ("200", True)
    restart = catalog.change_steps(change_id)[-3].details
    assert restart["details"]["restarted"] is False and "server" in restart["summary_en"]


def test_a_data_directory_that_is_not_the_servers_is_refused(catalog, server, tmp_path):
    """The inventory's data_directory must be the one the server reports: otherwise pg_ctl is not
    run, the step fails, the configuration is put back (revert) and nothing was restarted."""
    inv = _inventory(server, tmp_path)
    wrong = tmp_path / "not-the-data-directory"
    wrong.mkdir()
    system = inv.systems[0]
    moved = system.servers[0].model_copy(update={"data_directory": str(wrong)})
    inv = inv.model_copy(update={"systems": [system.model_copy(update={"servers": [moved]})]})
    access = _access(server)
    change_id = _approved(catalog, inv, access, tmp_path, restart_allowed=True)
    _, _, started_before = _setting(server)

    outcome = S.apply_and_verify(catalog, inv, change_id, access, REQUESTER, [], now=IN_WINDOW)

    assert outcome.state == "rolled_back"
    restart = [s for s in catalog.change_steps(change_id) if s.step == "restart"][0]
    assert restart.state == "failed" and "mismatch" in restart.details["details"]["output"]
    setting, pending, started_after = _setting(server)
    assert started_after == started_before and setting == "200"
    assert not pending  # ALTER SYSTEM RESET + reload: nothing waits for a restart any more
