"""daily_inspection end to end with dag.test(): real Airflow, PostgreSQL, sshd, catalog and SMTP
receiver.

Targets: a healthy database and SSH host (system s_ok), a database whose server is down and an SSH
host nobody listens for (system s_bad). The run must succeed anyway, record findings and incidents,
write a private report, alert once per new problem and close incidents once the problem is fixed.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository

from tests.conftest import Mailbox, free_port

REPO = Path(__file__).resolve().parents[2]
SUPERVISOR = "supervisor@hospital.example"
UNREACHABLE = {"database.reachable": "d_down", "host.reachable": "h_down"}


def _inventory(tmp_path: Path) -> Path:
    text = textwrap.dedent(f"""\
        version: 1
        hospital: 测试人民医院
        timezone: Asia/Shanghai
        schedules: {{inspection: "30 6 * * *"}}
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp_path}/backups}}
        reports: {{path: {tmp_path}/reports}}
        notifications:
          - name: 信息科主管
            kind: email
            conn_id: di_smtp
            to: [{SUPERVISOR}]
        systems:
          - id: s_ok
            name: 门诊系统
            name_en: Outpatient
            databases: [{{id: d_ok, conn_id: di_db_ok}}]
            hosts: [{{id: h_ok, ssh_conn_id: di_ssh_ok, disk_paths: ["/"]}}]
          - id: s_bad
            name: 住院系统
            name_en: Inpatient
            databases: [{{id: d_down, conn_id: di_db_down}}]
            hosts: [{{id: h_down, ssh_conn_id: di_ssh_down}}]
        """)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def _pg(pg, dbname: str, port: int | None = None) -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": pg.host,
            "port": port or pg.port,
            "login": pg.user,
            "password": pg.password,
            "schema": dbname,
        }
    )


def _ssh(sshd, port: int | None = None) -> str:
    return json.dumps(
        {
            "conn_type": "ssh",
            "host": sshd.host,
            "port": port or sshd.port,
            "login": sshd.user,
            "extra": {"key_file": str(sshd.client_key), "conn_timeout": 3},
        }
    )


@dataclass
class Env:
    repo: CatalogRepository
    mailbox: Mailbox
    reports: Path
    fix: Any  # () -> None: point the broken connections at working servers


@pytest.fixture
def env(pg, new_db, sshd, airflow_db, mailbox, monkeypatch, tmp_path) -> Env:
    from hisops.airflow.pools import ensure_pools

    ensure_pools()
    catalog_db, target_db = new_db("catalog"), new_db("target")
    upgrade(pg.sqlalchemy_url(catalog_db))
    dead_port = free_port()  # nothing listens here: "server down", "host unreachable"
    conns = {
        "HISOPS_CATALOG": _pg(pg, catalog_db),
        "DI_DB_OK": _pg(pg, target_db),
        "DI_DB_DOWN": _pg(pg, target_db, port=dead_port),
        "DI_SSH_OK": _ssh(sshd),
        "DI_SSH_DOWN": _ssh(sshd, port=dead_port),
        "DI_SMTP": json.dumps(
            {
                "conn_type": "smtp",
                "host": mailbox.host,
                "port": mailbox.port,
                "extra": {
                    "from_email": "hisops@hospital.example",
                    "disable_ssl": True,
                    "disable_tls": True,
                },
            }
        ),
    }
    for name, value in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", value)
    monkeypatch.setenv("HISOPS_INVENTORY", str(_inventory(tmp_path)))

    def fix() -> None:
        monkeypatch.setenv("AIRFLOW_CONN_DI_DB_DOWN", _pg(pg, target_db))
        monkeypatch.setenv("AIRFLOW_CONN_DI_SSH_DOWN", _ssh(sshd))

    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    yield Env(repo, mailbox, tmp_path / "reports", fix)
    repo.dispose()


def _dag():
    spec = importlib.util.spec_from_file_location(
        "daily_inspection_under_test", REPO / "dags" / "daily_inspection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.daily_inspection()


def _run(logical_date: datetime | None = None):
    kwargs = {"logical_date": logical_date} if logical_date else {}
    run = _dag().test(**kwargs)
    assert run.state == "success"
    return run


def _incident(repo: CatalogRepository, check_id: str, target_id: str):
    found = [i for i in repo.incidents() if (i.check_id, i.target_id) == (check_id, target_id)]
    assert len(found) == 1, f"{check_id} on {target_id}: {found}"
    return found[0]


def _latest_run(repo: CatalogRepository):
    return repo.recent_inspection_runs(limit=1)[0]


def _mapped_names(run) -> set[str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = run.get_task_instances(session=session)
        return {ti.rendered_map_index for ti in tis if ti.task_id == "inspect_system"}


def test_problems_become_findings_incidents_one_alert_and_a_private_report(env):
    run = _run()
    assert _mapped_names(run) == {
        "门诊系统 Outpatient (s_ok)",
        "住院系统 Inpatient (s_bad)",
    }  # per-system status in the UI
    record = _latest_run(env.repo)
    assert (record.run_id, record.state) == (run.run_id, "success")
    findings = env.repo.findings_for(record.id)
    by = {(f.target_id, f.check_id): f for f in findings}
    assert by[("d_ok", "database.reachable")].severity == "ok"
    assert by[("h_ok", "host.reachable")].severity == "ok"
    for check, target in UNREACHABLE.items():
        assert by[(target, check)].severity == "critical"
        assert _incident(env.repo, check, target).state == "open"
    assert {f.system_id for f in findings} == {"s_ok", "s_bad"}

    report = Path(record.report_path)
    assert report.is_file() and report.is_relative_to(env.reports)
    assert (
        oct(report.stat().st_mode & 0o777) == "0o600"
        and oct(report.parent.stat().st_mode & 0o777) == "0o700"
    )
    html = report.read_text()
    assert "测试人民医院" in html and "门诊系统" in html and "住院系统" in html and "d_down" in html
    assert "<script" not in html

    alerts, reports = env.mailbox.subjects("巡检告警"), env.mailbox.subjects("巡检报告")
    assert len(alerts) == 1 and len(reports) == 1
    report_mail = next(m for m in env.mailbox.messages if str(m["subject"]).startswith("巡检报告"))
    assert report_mail.get_body(preferencelist=("html",)) is not None
    assert "住院系统" in report_mail.get_body(preferencelist=("html",)).get_content()

    # the same problems again: incidents updated (occurrences 2), nobody paged again, a new report
    _run()
    for check, target in UNREACHABLE.items():
        incident = _incident(env.repo, check, target)
        assert (incident.state, incident.occurrences) == ("open", 2)
    assert len(env.mailbox.subjects("巡检告警")) == 1
    assert len(env.mailbox.subjects("巡检报告")) == 2

    # fixed: the next run closes the incidents by itself
    env.fix()
    _run()
    for check, target in UNREACHABLE.items():
        assert _incident(env.repo, check, target).state == "resolved"
    # now reachable, d_down shows its own problems (e.g. no verified backup): those are new alerts,
    # but a resolved incident never pages anyone
    alerts = [m for m in env.mailbox.messages if str(m["subject"]).startswith("巡检告警")]
    for alert in alerts[1:]:
        assert ".reachable" not in alert.get_body(preferencelist=("plain",)).get_content()
    latest = Path(_latest_run(env.repo).report_path).read_text()
    assert "已恢复" in latest


def test_run_for_a_past_date_is_labelled_present_state(env):
    """A manual run for a past logical date is historical: it records that day and says its live
    checks show the present, but leaves the incidents (and log offsets) to the current runs."""
    _run()
    past = datetime.now().astimezone() - timedelta(days=3)
    _run(logical_date=past)
    for check, target in UNREACHABLE.items():
        assert _incident(env.repo, check, target).occurrences == 1
    record = _latest_run(env.repo)
    html = Path(record.report_path).read_text()
    assert "当前状态，非历史" in html and "补录巡检" in html
    assert (
        Path(record.report_path).parent.name
        == past.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    )
    assert all(f.details.get("present_state") for f in env.repo.findings_for(record.id))
    assert len(env.mailbox.subjects("补录 backfill")) == 1
