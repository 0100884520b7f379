"""daily_inspection over several days through the DAG's own task bodies and a real catalog.

The tasks of ``dags/daily_inspection.py`` are called in the DAG's order (start → inspect_system per
work order → notify_incidents → report → send_report) with the task context Airflow would give
them, so the run type and dates can be chosen: an on-time scheduled run each "day", a backfill of
a past day in between and a retried task. Targets are real: a database of the suite's cluster,
this machine as a `local: true` host with two logs, an SMTP receiver for the mails.

Day 1 finds problems (an invalid index, log errors, a removed-later system's invalid index);
a backfill of five days ago changes no offset and no incident; day 2 sees the appended lines only
(one log rotated, one truncated), the invalid index fixed (incident resolved), a new problem (a
long transaction), the second system removed from the inventory (its incident closed, saying
why); the retried inspect_system stores nothing twice.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.repository import CatalogRepository

DAG_ID = "daily_inspection"
TZ = ZoneInfo("Asia/Shanghai")


def lines(n: int, word: str = "LOG", start: int = 0) -> str:
    return "".join(
        f"2026-12-01 07:00:{i % 60:02d} [{100 + i}] {word}:  line {start + i} password=s3cret\n"
        for i in range(n)
    )


def append(path: Path, text: str, mode: str = "a") -> None:
    with path.open(mode, encoding="utf-8") as fh:
        fh.write(text)


def inventory_text(tmp: Path, with_s2: bool) -> str:
    s2 = (
        textwrap.indent(
            textwrap.dedent("""\
        - id: s2
          name: 住院系统
          name_en: Inpatient
          databases: [{id: d2, conn_id: days_db2}]
        """),
            "  ",
        )
        if with_s2
        else ""
    )
    return (
        textwrap.dedent(f"""\
        version: 1
        hospital: 测试人民医院
        timezone: Asia/Shanghai
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp}/backups}}
        reports: {{path: {tmp}/reports}}
        thresholds:
          long_transaction_seconds: {{warn: 2, critical: 3600}}
        notifications:
          - {{name: 主管, kind: email, conn_id: days_smtp, to: [supervisor@hospital.example]}}
        systems:
          - id: s1
            name: 门诊系统
            name_en: Outpatient
            databases: [{{id: d1, conn_id: days_db1}}]
            hosts:
              - id: h1
                local: true
                disk_paths: []
                logs:
                  - {{path: "{tmp}/logs/app.log*", patterns: {{error: ERROR}}}}
                  - {{path: "{tmp}/logs/other.log", patterns: {{error: ERROR}}}}
        """)
        + s2
    )


def context(run_type: str, run_after: datetime, logical: datetime) -> dict[str, Any]:
    run_id = f"{run_type}__{logical.isoformat()}"
    dag_run = SimpleNamespace(
        dag_id=DAG_ID,
        run_id=run_id,
        run_type=run_type,
        logical_date=logical,
        run_after=run_after,
        triggering_user_name=None,
    )
    return {
        "dag_run": dag_run,
        "dag": SimpleNamespace(dag_id=DAG_ID),
        "run_id": run_id,
        "logical_date": logical,
        "params": {"systems": []},
        "data_interval_start": logical - timedelta(days=1),
        "data_interval_end": logical,
    }


def run_day(ctx: dict[str, Any], retry: bool = False) -> dict[str, Any]:
    """The DAG's task bodies, called as ``dags/daily_inspection.py`` calls them, in its order;
    ``retry`` runs every inspect_system twice (a retried task after a failure past recording)."""
    from hisops.airflow import inspection_tasks as t

    plan = t.start(ctx)
    outcomes = []
    for order in plan:
        if retry:
            t.inspect_system(**order)
        outcomes.append(t.inspect_system(**order))
    t.notify_incidents(outcomes)
    info = t.report(plan, outcomes, ctx)
    t.send_report(plan, info, ctx)
    return {"plan": plan, "outcomes": outcomes, "report": info}


@pytest.fixture
def days(pg, new_db, mailbox, monkeypatch, tmp_path):
    catalog_db, db1, db2 = new_db("catalog"), new_db("days1"), new_db("days2")
    upgrade(pg.sqlalchemy_url(catalog_db))
    for name in (db1, db2):
        pg.execute("CREATE TABLE t (id int)", name)
    (tmp_path / "logs").mkdir()

    def pg_conn(dbname: str) -> str:
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": pg.host,
                "port": pg.port,
                "login": pg.user,
                "password": pg.password,
                "schema": dbname,
            }
        )

    for name, value in {
        "HISOPS_CATALOG": pg_conn(catalog_db),
        "DAYS_DB1": pg_conn(db1),
        "DAYS_DB2": pg_conn(db2),
        "DAYS_SMTP": json.dumps(
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
    }.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", value)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(tmp_path, with_s2=True), encoding="utf-8")
    monkeypatch.setenv("HISOPS_INVENTORY", str(inventory))
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(catalog_db))
    yield SimpleNamespace(
        repo=repo, pg=pg, db1=db1, db2=db2, tmp=tmp_path, inventory=inventory, mailbox=mailbox
    )
    repo.dispose()


def invalid_index(pg, dbname: str) -> None:
    """A failed CREATE INDEX CONCURRENTLY leaves an invalid index (db.invalid_indexes warns)."""
    pg.execute("INSERT INTO t VALUES (1), (1)", dbname)
    conn = psycopg2.connect(pg.dsn(dbname))
    conn.autocommit = True
    with conn.cursor() as cur, pytest.raises(psycopg2.Error):
        cur.execute("CREATE UNIQUE INDEX CONCURRENTLY t_uq ON t (id)")
    conn.close()


def open_incidents(repo) -> dict[tuple[str, str], Any]:
    return {(i.target_id, i.check_id): i for i in repo.open_incidents()}


def log_counts(repo, run_pk: int) -> dict[str, float]:
    return {
        f.target_id.rsplit("/", 1)[-1]: f.value
        for f in repo.findings_for(run_pk)
        if f.check_id == "log.error"
    }


def offsets(repo) -> dict:
    with repo.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            'SELECT host_id, reader, path, inode, "offset" FROM hisops.log_offset'
        )
        return {tuple(r[:3]): tuple(r[3:]) for r in rows}


@pytest.mark.long  # ~25 s alone, over a minute on the shared machine
def test_inspection_over_days(days) -> None:
    repo, pg, tmp = days.repo, days.pg, days.tmp
    app, other = tmp / "logs" / "app.log", tmp / "logs" / "other.log"
    append(app, lines(3) + lines(2, "ERROR"))
    append(other, lines(5) + lines(3, "ERROR"))
    invalid_index(pg, days.db1)
    invalid_index(pg, days.db2)
    now = datetime.now().astimezone()

    # --- day 1: an on-time scheduled run (its logical date is the start of the interval)
    day1 = run_day(
        context("scheduled", now - timedelta(minutes=1), now - timedelta(days=1, minutes=1))
    )
    run1 = day1["plan"][0]["inspection_run_id"]
    assert not day1["plan"][0]["historical"]
    assert log_counts(repo, run1) == {"app.log*": 2, "other.log": 3}
    incidents = open_incidents(repo)
    assert {
        ("d1", "db.invalid_indexes"),
        ("d2", "db.invalid_indexes"),
        (f"h1:{tmp}/logs/app.log*", "log.error"),
    } <= set(incidents)
    report1 = Path(day1["report"]["path"])
    assert (
        report1.parent.name == now.astimezone(TZ).date().isoformat()
    )  # dated today, not yesterday
    assert not day1["report"]["subject"].startswith("补录")
    html = report1.read_text()
    assert "password=***" in html and "s3cret" not in html  # masked samples in the report
    alerts = days.mailbox.subjects("巡检告警")
    assert len(alerts) == 1

    # --- a backfill of a past day: changes no offset, no incident
    before_offsets, before_incidents = offsets(repo), open_incidents(repo)
    past = now - timedelta(days=5)
    back = run_day(context("backfill", past, past))
    assert back["plan"][0]["historical"] and back["report"]["subject"].startswith("补录")
    assert Path(back["report"]["path"]).parent.name == past.astimezone(TZ).date().isoformat()
    assert offsets(repo) == before_offsets
    after = open_incidents(repo)
    assert {k: (i.occurrences, i.severity) for k, i in after.items()} == {
        k: (i.occurrences, i.severity) for k, i in before_incidents.items()
    }
    assert len(days.mailbox.subjects("巡检告警")) == 1  # nobody paged by a backfill

    # --- day 2: appended lines, a rotation, a truncation; one fix, one new problem; s2 removed
    append(app, lines(1, "ERROR", 10))
    os.rename(app, tmp / "logs" / "app.log.1")
    append(app, lines(1, "ERROR", 20))
    append(other, lines(1, "ERROR", 30), mode="w")  # copytruncate
    pg.execute("DROP INDEX t_uq", days.db1)  # fixed
    days.inventory.write_text(inventory_text(tmp, with_s2=False), encoding="utf-8")
    holder = psycopg2.connect(pg.dsn(days.db1))  # a new problem: a transaction left open
    with holder.cursor() as cur:
        cur.execute("SELECT 1")
    time.sleep(2.5)
    now2 = datetime.now().astimezone()
    day2 = run_day(context("scheduled", now2, now2 - timedelta(days=1)), retry=True)
    holder.rollback()
    holder.close()
    run2 = day2["plan"][0]["inspection_run_id"]
    assert [o["system_id"] for o in day2["plan"]] == ["s1"]
    assert len(days.mailbox.subjects("巡检告警")) == 2  # the new long transaction, paged once
    assert log_counts(repo, run2) == {"app.log*": 2, "other.log": 1}  # only what is new
    reasons = {
        Path(x["path"]).name: x["reason"]
        for f in repo.findings_for(run2)
        if f.check_id == "log.files"
        for x in f.details["files"]
    }
    assert reasons == {"app.log": "rotated", "app.log.1": "renamed", "other.log": "truncated"}
    by = {(f.target_id, f.check_id): f for f in repo.findings_for(run2)}
    assert by[("d1", "db.invalid_indexes")].severity == "ok"
    assert by[("d1", "db.long_transactions")].severity == "warn"
    resolved = [
        i for i in repo.incidents() if (i.target_id, i.check_id) == ("d1", "db.invalid_indexes")
    ]
    assert [i.state for i in resolved] == ["resolved"]
    gone = [
        i for i in repo.incidents() if i.target_id == "d2" and i.check_id == "db.invalid_indexes"
    ]
    assert [i.state for i in gone] == ["resolved"] and "removed from the inventory" in gone[
        0
    ].resolution_note
    now_open = open_incidents(repo)
    assert ("d1", "db.long_transactions") in now_open and (
        "d2",
        "db.invalid_indexes",
    ) not in now_open

    # the retry stored nothing twice: one finding per target and check, incidents counted once
    keys = [(f.target_id, f.check_id) for f in repo.findings_for(run2)]
    assert len(keys) == len(set(keys))
    assert now_open[(f"h1:{tmp}/logs/app.log*", "log.error")].occurrences == 2  # day 1 + day 2
    samples = repo.metric_series("d1", "database_size_bytes")
    assert len([s for s in samples if s.inspection_run_id == run2]) == 1
