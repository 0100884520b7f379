"""The ops catalog against a real PostgreSQL: migrations, repository round-trips, guards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hisops import cli
from hisops.catalog import migrate
from hisops.catalog import tables as T
from hisops.catalog.records import FindingRecord, LogOffset, MetricSample, worse
from hisops.catalog.repository import BackupStateError, CatalogError, CatalogRepository
from sqlalchemy import create_engine, delete, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

T0 = datetime(2025, 3, 1, 6, 30, tzinfo=UTC)


@pytest.fixture
def catalog_url(pg, new_db) -> str:
    url = pg.sqlalchemy_url(new_db("catalog"))
    migrate.upgrade(url)
    return url


@pytest.fixture
def repo(catalog_url) -> Iterator[CatalogRepository]:
    repository = CatalogRepository.from_url(catalog_url)
    yield repository
    repository.dispose()


def storage_finding(
    severity: str, minutes: int, *, target_id: str = "emr_db", value: float = 80.0
) -> FindingRecord:
    return FindingRecord(
        check_id="db.storage",
        target_kind="database",
        target_id=target_id,
        severity=severity,  # type: ignore[arg-type]
        system_id="emr",
        value=value,
        value_text=f"{value}%",
        threshold="warn 80%, critical 90%",
        message_zh=f"数据库存储使用率 {value}%",
        message_en=f"database storage at {value}%",
        suggestion_zh="清理过期日志或扩容",
        suggestion_en="purge old logs or add space",
        details={"tablespace": "pg_default", "bytes": 123},
        observed_at=T0 + timedelta(minutes=minutes),
    )


def record(repo: CatalogRepository, run: int, finding: FindingRecord):
    """Fold ``finding`` as the next inspection would (one finding per run, target and check)."""
    run = repo.start_inspection_run("daily_inspection", f"r{run}-{uuid.uuid4().hex[:8]}")
    [finding_id] = repo.add_findings(run, [finding])
    return repo.upsert_incident_for(finding, finding_id), finding_id


# --- migrations ------------------------------------------------------------------------------
def test_upgrade_twice_is_idempotent_and_current_is_head(pg, new_db):
    url = pg.sqlalchemy_url(new_db("catalog"))
    assert migrate.current(url) is None
    migrate.upgrade(url)
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head() is not None
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names(schema="hisops"))
    engine.dispose()
    assert names == {t.name for t in T.metadata.sorted_tables} | {"alembic_version"}


def test_downgrade_to_base_and_up_again(catalog_url):
    repo = CatalogRepository.from_url(catalog_url)
    repo.add_audit_event("ops", "catalog.test", None, "success")
    repo.dispose()
    migrate.downgrade(catalog_url, "base")
    assert migrate.current(catalog_url) is None
    engine = create_engine(catalog_url)
    assert inspect(engine).get_table_names(schema="hisops") == ["alembic_version"]
    engine.dispose()
    migrate.upgrade(catalog_url)
    assert migrate.current(catalog_url) == migrate.head()
    repo = CatalogRepository.from_url(catalog_url)
    assert repo.audit_events() == []  # a fresh schema, guard trigger re-created
    repo.add_audit_event("ops", "catalog.test", None, "success")
    repo.dispose()


def test_concurrent_upgrades_take_turns(pg, new_db):
    """Workers that start at once (processes: advisory lock; threads:
    in-process lock) all succeed."""
    urls = [pg.sqlalchemy_url(new_db("catalog")) for _ in range(2)]
    with ProcessPoolExecutor(3, mp_context=get_context("spawn")) as pool:
        list(pool.map(migrate.upgrade, [urls[0]] * 3))
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(migrate.upgrade, [urls[1]] * 3))
    assert [migrate.current(url) for url in urls] == [migrate.head()] * 2


def test_cli_catalog_upgrade(pg, new_db, capsys):
    url = pg.sqlalchemy_url(new_db("catalog"))
    assert cli.main(["catalog", "upgrade", "--url", url]) == 0
    assert migrate.current(url) == migrate.head()
    assert "catalog schema at head" in capsys.readouterr().out


def test_tables_module_matches_migrations(catalog_url):
    """tables.py (what the code uses) and the migrations (what the database has) agree."""
    # search_path=public: the test user is called hisops, and "$user" would
    # make hisops the default schema
    engine = create_engine(catalog_url, connect_args={"options": "-csearch_path=public"})
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "version_table_schema": "hisops",
                "compare_server_default": True,
                "include_name": lambda name, kind, _parent: kind != "schema" or name == "hisops",
            },
        )
        diff = compare_metadata(ctx, T.metadata)
    engine.dispose()
    assert diff == []


# --- selfcheck, inspection, findings ---------------------------------------------------------
def test_selfcheck_round_trip(repo):
    assert repo.latest_selfcheck() is None
    results = [{"check": "catalog", "ok": True}, {"check": "ssh", "ok": False, "error": "连接超时"}]
    first = repo.record_selfcheck(results, ok=False, dag_run_id="manual__1")
    second = repo.record_selfcheck([], ok=True, dag_run_id=None, started_at=T0)
    assert second > first
    latest = repo.latest_selfcheck()
    assert latest is not None and latest.id == first  # T0 lies before the first run's start
    assert latest.results == results and latest.ok is False and latest.dag_run_id == "manual__1"
    assert latest.finished_at is not None


def test_inspection_run_and_findings_round_trip(repo):
    run = repo.start_inspection_run("daily_inspection", "scheduled__2025-03-01", T0)
    assert (
        repo.start_inspection_run("daily_inspection", "scheduled__2025-03-01", T0) == run
    )  # task retry
    other = repo.start_inspection_run("daily_inspection", "manual__x", None)
    assert other != run
    findings = [
        storage_finding("warn", 0, value=85.5),
        FindingRecord(
            "host.up", "host", "his-app-01", "check_error", "无法连接主机", "host unreachable"
        ),
    ]
    ids = repo.add_findings(run, findings)
    assert len(ids) == 2 and ids[0] < ids[1]
    assert repo.add_findings(run, []) == []
    stored = repo.findings_for(run)
    assert [f.id for f in stored] == ids
    assert stored[0].value == 85.5 and stored[0].message_zh == "数据库存储使用率 85.5%"
    assert stored[0].details == {"tablespace": "pg_default", "bytes": 123}
    assert stored[0].observed_at == T0 and stored[0].inspection_run_id == run
    assert stored[1].value is None and stored[1].details == {} and stored[1].system_id is None
    assert repo.findings_for(other) == []

    repo.finish_inspection_run(run, "success", report_path="/reports/2025-03-01.html")
    done = repo.get_inspection_run(run)
    assert done is not None
    assert (done.state, done.report_path, done.logical_date) == (
        "success",
        "/reports/2025-03-01.html",
        T0,
    )
    assert done.finished_at is not None
    repo.finish_inspection_run(run, "failed")  # report_path kept when not given
    assert repo.get_inspection_run(run).report_path == "/reports/2025-03-01.html"
    with pytest.raises(CatalogError):
        repo.finish_inspection_run(10**9, "success")


def test_finding_severity_is_checked_by_the_database(repo):
    run = repo.start_inspection_run("daily_inspection", "r1")
    with pytest.raises(IntegrityError):
        repo.add_findings(run, [storage_finding("fatal", 0)])


# --- incidents -------------------------------------------------------------------------------
def test_worse_ranks_severities():
    assert worse("warn", "critical") == "critical"
    assert worse("critical", "warn") == "critical"
    assert worse("check_error", "warn") == "warn"
    assert worse("warn", "check_error") == "warn"


def test_incident_lifecycle(repo):
    run = repo.start_inspection_run("daily_inspection", "r1")

    opened, f1 = record(repo, run, storage_finding("warn", 0, value=82))
    assert opened.action == "opened" and opened.previous_severity is None
    inc = opened.incident
    assert (inc.severity, inc.state, inc.occurrences, inc.last_finding_id) == (
        "warn",
        "open",
        1,
        f1,
    )
    assert inc.opened_at == inc.last_seen_at == T0
    assert (inc.check_id, inc.target_id, inc.system_id) == ("db.storage", "emr_db", "emr")
    assert inc.title_zh == "数据库存储使用率 82%"

    updated, f2 = record(repo, run, storage_finding("warn", 10, value=84))
    assert updated.action == "updated" and updated.previous_severity == "warn"
    stored = repo.get_incident(inc.id)
    assert (stored.occurrences, stored.severity, stored.last_finding_id) == (2, "warn", f2)
    assert stored.last_seen_at == T0 + timedelta(minutes=10) and stored.opened_at == T0

    escalated, _ = record(repo, run, storage_finding("critical", 20, value=93))
    assert escalated.action == "escalated" and escalated.previous_severity == "warn"
    stored = repo.get_incident(inc.id)
    assert (stored.id, stored.severity, stored.occurrences) == (inc.id, "critical", 3)
    assert stored.title_en == "database storage at 93%"

    calmer, _ = record(repo, run, storage_finding("warn", 30, value=88))
    assert calmer.action == "updated"
    assert repo.get_incident(inc.id).severity == "critical"  # never goes down while open

    resolved, f5 = record(repo, run, storage_finding("ok", 40, value=60))
    assert resolved.action == "resolved" and resolved.previous_severity == "critical"
    stored = repo.get_incident(inc.id)
    assert (stored.state, stored.resolved_at, stored.last_finding_id) == (
        "resolved",
        T0 + timedelta(minutes=40),
        f5,
    )
    assert stored.occurrences == 4
    assert repo.open_incidents() == []

    assert record(repo, run, storage_finding("ok", 50))[0] is None  # nothing open, nothing to do

    again, _ = record(repo, run, storage_finding("warn", 60))
    assert again.action == "opened" and again.incident.id != inc.id
    assert again.incident.occurrences == 1 and again.incident.opened_at == T0 + timedelta(
        minutes=60
    )
    assert [i.id for i in repo.open_incidents()] == [again.incident.id]
    assert {i.id for i in repo.incidents(since=T0)} == {inc.id, again.incident.id}


def test_acknowledge_assign_and_open_incident_order(repo):
    run = repo.start_inspection_run("daily_inspection", "r1")
    warn, _ = record(repo, run, storage_finding("warn", 0, target_id="a"))
    crit, _ = record(repo, run, storage_finding("critical", 1, target_id="b"))
    err, _ = record(repo, run, storage_finding("check_error", 2, target_id="c"))
    assert [i.id for i in repo.open_incidents()] == [
        crit.incident.id,
        warn.incident.id,
        err.incident.id,
    ]
    assert repo.open_incidents(system_id="pacs") == []

    assert repo.acknowledge_incident(warn.incident.id, "张工") is True
    assert repo.acknowledge_incident(warn.incident.id, "李工") is False
    acked = repo.get_incident(warn.incident.id)
    assert (acked.state, acked.acknowledged_by) == (
        "acknowledged",
        "张工",
    ) and acked.acknowledged_at is not None

    still, _ = record(repo, run, storage_finding("warn", 5, target_id="a"))
    assert still.action == "updated" and still.incident.state == "acknowledged"
    gone, _ = record(repo, run, storage_finding("ok", 6, target_id="a"))
    assert gone.action == "resolved"
    assert repo.acknowledge_incident(warn.incident.id, "王工") is False


def test_partial_unique_index_refuses_a_second_open_incident(repo):
    row = {
        "check_id": "db.storage",
        "target_id": "emr_db",
        "severity": "warn",
        "title_zh": "t",
        "title_en": "t",
    }
    with repo.engine.begin() as conn:
        conn.execute(insert(T.incident).values(**row, state="resolved"))
        conn.execute(insert(T.incident).values(**row, state="resolved"))  # history may repeat
        conn.execute(insert(T.incident).values(**row))
    with (
        pytest.raises(IntegrityError, match="uq_incident_open_check_target"),
        repo.engine.begin() as conn,
    ):
        conn.execute(insert(T.incident).values(**row, state="acknowledged"))
    with repo.engine.begin() as conn:
        conn.execute(insert(T.incident).values(**{**row, "target_id": "pacs_db"}))
    assert len(repo.open_incidents()) == 2


# --- audit -----------------------------------------------------------------------------------
def test_audit_events_round_trip(repo):
    first = repo.add_audit_event(
        "airflow:zhang",
        "backup.start",
        "emr_db",
        "success",
        details={"说明": "每日备份"},
        dag_id="db_backup",
        run_id="scheduled__1",
    )
    second = repo.add_audit_event("airflow:li", "restore.request", "emr_db", "refused")
    events = repo.audit_events()
    assert [e.id for e in events] == [second, first]  # newest first
    assert events[1].details == {"说明": "每日备份"} and events[1].dag_id == "db_backup"
    assert events[0].details == {} and events[0].result == "refused" and events[0].at is not None
    assert [e.id for e in repo.audit_events(limit=1)] == [second]
    assert repo.audit_events(since=datetime.now(UTC) + timedelta(hours=1)) == []
    with pytest.raises(IntegrityError):
        repo.add_audit_event("x", "y", None, "maybe")  # type: ignore[arg-type]


def test_audit_events_cannot_be_changed_or_deleted(repo, pg, catalog_url):
    event = repo.add_audit_event("airflow:zhang", "maintenance.vacuum", "emr_db", "success")
    t = T.audit_event
    with pytest.raises(DBAPIError, match="append-only"), repo.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == event).values(result="failure"))
    with pytest.raises(DBAPIError, match="append-only"), repo.engine.begin() as conn:
        conn.execute(delete(t).where(t.c.id == event))
    repo.dispose()
    with pytest.raises(Exception, match="append-only"):
        pg.execute("TRUNCATE hisops.audit_event", dbname=catalog_url.rsplit("/", 1)[1])
    [kept] = repo.audit_events()
    assert (kept.id, kept.result) == (event, "success")


# --- backups and verification ----------------------------------------------------------------
def test_backup_state_transitions(repo):
    manifest = {"files": [{"name": "emr.dump", "sha256": "ab" * 32}], "说明": "全量"}
    b1 = repo.register_backup_start(
        "emr_db", "emr", "database", "/backup/emr/1.partial", "scheduled__1"
    )
    assert repo.get_backup(b1).state == "running"
    assert repo.latest_verified_backup("emr_db") is None
    repo.complete_backup(b1, manifest, "cd" * 32, 4096, "/backup/emr/1")
    done = repo.get_backup(b1)
    assert (done.state, done.path, done.size_bytes, done.manifest) == (
        "completed",
        "/backup/emr/1",
        4096,
        manifest,
    )
    assert (
        done.manifest_sha256 == "cd" * 32
        and done.finished_at is not None
        and done.dag_run_id == "scheduled__1"
    )
    assert repo.latest_verified_backup("emr_db") is None  # completed is not yet proven
    repo.mark_backup_verified(b1)
    assert repo.latest_verified_backup("emr_db").id == b1

    b2 = repo.register_backup_start("emr_db", "emr", "database", "/backup/emr/2", None)
    repo.complete_backup(b2, manifest, "ef" * 32, 4096)
    repo.mark_backup_verification_failed(b2, "pg_restore: 数据损坏")
    b3 = repo.register_backup_start("emr_db", "emr", "database", "/backup/emr/3", None)
    repo.fail_backup(b3, "No space left on device")
    assert (
        repo.get_backup(b3).finished_at is not None and repo.get_backup(b2).path == "/backup/emr/2"
    )
    assert repo.latest_verified_backup("emr_db").id == b1  # newer failures do not hide it
    assert [b.id for b in repo.backups_for("emr_db", states=["failed"])] == [b3, b2]
    assert [b.id for b in repo.backups_for("emr_db")] == [b3, b2, b1]

    with pytest.raises(BackupStateError, match="'failed'"):
        repo.complete_backup(b3, manifest, "00", 1)
    with pytest.raises(BackupStateError):
        repo.mark_backup_verified(b3)
    with pytest.raises(BackupStateError, match="does not exist"):
        repo.fail_backup(10**9, "x")

    b4 = repo.register_backup_start("emr_db", "emr", "database", "/backup/emr/4", None)
    repo.complete_backup(b4, manifest, "11" * 32, 5000)
    repo.mark_backup_verified(b4)
    repo.mark_backup_verified(b4)  # re-verification keeps it verified
    assert repo.latest_verified_backup("emr_db").id == b4
    assert repo.latest_verified_backup("pacs_db") is None

    assert repo.mark_backup_deleted(b4, "retention: GFS daily expired") is True
    assert repo.mark_backup_deleted(b4, "again") is False
    assert repo.get_backup(b4).deleted_reason == "retention: GFS daily expired"
    assert repo.latest_verified_backup("emr_db").id == b1  # deleted files cannot be restored
    assert b4 not in [b.id for b in repo.backups_for("emr_db")]
    assert b4 in [b.id for b in repo.backups_for("emr_db", include_deleted=True)]


def test_verification_round_trip(repo):
    backup = repo.register_backup_start("emr_db", "emr", "database", "/backup/emr/1", None)
    ok = repo.add_verification(
        backup,
        True,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=42),
        restore_seconds=41.5,
        evidence_path="/evidence/1.json",
        details={"amcheck": "ok", "行数": 1000},
    )
    bad = repo.add_verification(backup, False, error="restore timed out")
    [newest, oldest] = repo.verifications_for(backup)
    assert (newest.id, oldest.id) == (bad, ok)
    assert (oldest.ok, oldest.restore_seconds, oldest.evidence_path) == (
        True,
        41.5,
        "/evidence/1.json",
    )
    assert oldest.details == {"amcheck": "ok", "行数": 1000} and oldest.started_at == T0
    assert (newest.ok, newest.error, newest.details) == (False, "restore timed out", {})
    with pytest.raises(IntegrityError):
        repo.add_verification(10**9, True)


# --- maintenance and changes -----------------------------------------------------------------
def test_maintenance_round_trip(repo):
    backup = repo.register_backup_start("emr_db", "emr", "database", "/b/1", None)
    op = repo.start_maintenance(
        "emr_db",
        "reindex",
        "public.patient_pkey",
        before={"bloat_pct": 41.0},
        backup_id=backup,
        dag_run_id="scheduled__1",
    )
    running = repo.maintenance_operations("emr_db")[0]
    assert (running.id, running.state, running.before, running.after) == (
        op,
        "running",
        {"bloat_pct": 41.0},
        None,
    )
    repo.finish_maintenance(op, "completed", after={"bloat_pct": 2.0})
    [done] = repo.maintenance_operations(since=T0)
    assert (done.state, done.after, done.backup_id, done.error) == (
        "completed",
        {"bloat_pct": 2.0},
        backup,
        None,
    )
    assert done.finished_at is not None
    assert repo.maintenance_operations("pacs_db") == []
    with pytest.raises(CatalogError):
        repo.finish_maintenance(10**9, "failed", error="x")


def test_change_round_trip(repo):
    backup = repo.register_backup_start("emr_db", "emr", "database", "/b/1", None)
    change = repo.create_change(
        "升级 EMR 到 5.2",
        "李工",
        description="补丁 KB-12",
        approved_by="信息科主任",
        details={"ticket": "CHG-7"},
    )
    assert repo.get_change(change).state == "approved"
    repo.set_change_state(change, "running", pre_backup_id=backup, started=True)
    running = repo.get_change(change)
    assert (running.state, running.pre_backup_id) == (
        "running",
        backup,
    ) and running.started_at is not None
    repo.set_change_state(change, "completed", finished=True, details={"verified": True})
    done = repo.get_change(change)
    assert done.state == "completed" and done.finished_at is not None
    assert done.details == {"ticket": "CHG-7", "verified": True}
    assert repo.get_change(repo.create_change("x", "y")).state == "requested"


# --- log offsets and metrics -----------------------------------------------------------------
def test_log_offset_round_trip(repo):
    assert repo.get_log_offset("his-app-01", "/var/log/his/app.log") is None
    repo.save_log_offsets("his-app-01", "", None, {"/var/log/his/app.log": (1234, 100)})
    first = repo.get_log_offset("his-app-01", "/var/log/his/app.log")
    assert (first.inode, first.offset) == (1234, 100) and first.updated_at is not None
    repo.save_log_offsets("his-app-01", "", None, {"/var/log/his/app.log": (5678, 0)})  # rotated
    assert repo.get_log_offset("his-app-01", "/var/log/his/app.log") == LogOffset(
        "his-app-01",
        "/var/log/his/app.log",
        5678,
        0,
        repo.get_log_offset("his-app-01", "/var/log/his/app.log").updated_at,
        prev_inode=1234,
        prev_offset=100,
    )
    repo.save_log_offsets("his-app-02", "", None, {"/var/log/his/app.log": (None, 7)})
    assert repo.get_log_offset("his-app-02", "/var/log/his/app.log").offset == 7
    with repo.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(T.log_offset)).scalar_one() == 2


def test_metric_series(repo):
    samples = [
        MetricSample("emr_db", "db.size_bytes", 100.0 + i, T0 + timedelta(days=i)) for i in range(5)
    ]
    samples.append(MetricSample("emr_db", "db.connections", 12, T0))
    samples.append(MetricSample("pacs_db", "db.size_bytes", 9, T0))
    assert repo.add_metric_samples(reversed(samples)) == 7
    assert repo.add_metric_samples([]) == 0
    series = repo.metric_series("emr_db", "db.size_bytes")
    assert [(s.value, s.observed_at) for s in series] == [
        (100.0 + i, T0 + timedelta(days=i)) for i in range(5)
    ]
    assert all(s.id is not None for s in series)
    assert [
        s.value for s in repo.metric_series("emr_db", "db.size_bytes", since=T0 + timedelta(days=3))
    ] == [103, 104]
    assert repo.metric_series("emr_db", "nope") == []
