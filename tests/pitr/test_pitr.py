"""The physical tier against a real archiving PostgreSQL and pgBackRest 2.45."""

from __future__ import annotations

from pathlib import Path

import pytest
from hisops.inventory.models import Database
from hisops.pitr import drill as pitr_drill
from hisops.pitr import preflight, service
from hisops.runinfo import RunInfo

from tests.pitr.conftest import drill_request

RUN = RunInfo(dag_id="pitr_backup", run_id="manual__t", triggering_user="tester")


@pytest.fixture(scope="module")
def pitr_db(pitr_env) -> str:
    from hisops.synth.generate import generate

    name = "his_pitr"
    if pitr_env.cluster.create_database(name):
        generate(pitr_env.dsn(name), 0.01, seed=5, log=lambda _m: None)
    return name


def test_preflight_says_exactly_what_to_set_and_names_wrong_fields(pitr_env, pg):
    ok = preflight.preflight(pitr_env.server, pitr_env.dsn(), pitr_env.pgbr)
    assert ok.ok, ok.problems
    wrong_dir = pitr_env.server.model_copy(update={"data_directory": "/srv/not-the-data"})
    problems = preflight.check_settings(wrong_dir, ok.settings, "systems[0].servers[0].")
    assert (
        problems == [p for p in problems if "systems[0].servers[0].data_directory" in p]
        and problems
    )
    plain = preflight.check_settings(
        pitr_env.server, preflight.read_settings(pg.dsn())
    )  # not archiving
    assert any("ALTER SYSTEM SET archive_mode = 'on'" in p for p in plain)
    assert any(f"--stanza={pitr_env.server.pitr.stanza} archive-push %p" in p for p in plain)


@pytest.mark.long
def test_full_backup_is_catalogued_and_the_pitr_drill_proves_the_point(
    pitr_env, pitr_db, catalog, tmp_path
):
    outcome = service.backup_server(catalog, pitr_env.server, "emr", pitr_env.pgbr, "full", RUN)

    record = catalog.get_backup(outcome.backup_id)
    assert (record.kind, record.state, record.database_id) == ("physical", "completed", "pg-main")
    assert record.manifest["label"] == outcome.label and record.path.endswith(outcome.label)
    db = Database(id="emr_db", conn_id="t_pitr", critical_tables=["patient"])
    req = drill_request(
        pitr_env, outcome.backup_id, outcome.label, tmp_path / "evidence", ((db, pitr_db),)
    )

    result = pitr_drill.run_pitr_drill(req)

    assert result.ok, result.failures
    assert any("point proven" in n for n in result.notes)
    assert result.checks_total > 10 and result.restore_seconds > 0
    assert not list((pitr_env.root / "scratch").iterdir())  # scratch cluster stopped and removed
    page = Path(result.evidence_path)
    assert page.name == "evidence.html" and page.stat().st_mode & 0o077 == 0
    html = page.read_text()
    # the same evidence page as a logical drill's: verdict, RTO, every check by database, proof
    total = result.checks_total
    assert "演练通过 drill passed" in html and f"{total}/{total}" in html
    assert f"{result.restore_seconds:.1f} 秒 s" in html and "时间点恢复 PITR" in html
    assert "emr_db: public.patient" in html and "point proven" in html
    assert "已检查 checked" in html and "pgbackrest verify" in html


def test_archive_findings_from_the_archiver_row(pitr_env):
    from datetime import UTC, datetime, timedelta

    from hisops.inspect.pitr_checks import archive_findings

    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    row = {
        "failed_count": 0,
        "last_archived_wal": "000000010000000000000009",
        "last_failed_wal": None,
        "last_archived_time": now - timedelta(hours=5),
        "last_failed_time": None,
        "current_wal": "00000001000000000000000A",
        "now": now,
    }
    archive, rpo = archive_findings(pitr_env.server, "emr", row)
    assert (archive.severity, rpo.severity) == ("ok", "ok")  # idle: nothing waiting, however old
    failing = {
        **row,
        "failed_count": 7,
        "last_failed_wal": "00000001000000000000000B",
        "last_failed_time": now - timedelta(minutes=1),
        "current_wal": "00000001000000000000000C",
    }
    archive, rpo = archive_findings(pitr_env.server, "emr", failing)
    assert archive.severity == "critical" and "00000001000000000000000B" in archive.message_en
    assert rpo.severity == "critical" and "RPO target 300 s" in rpo.message_en and rpo.suggestion_zh


def test_unwritable_repository_is_an_inspection_finding_and_a_failed_backup_is_never_completed(
    own_pitr_env, catalog
):
    import os
    import time

    from hisops.inspect.pitr_checks import inspect_server

    env = own_pitr_env
    repo_dir = Path(env.server.pitr.repo.path)

    def chmod_dirs(mode: int) -> None:
        for folder, _dirs, _files in os.walk(repo_dir):
            os.chmod(folder, mode)

    chmod_dirs(0o500)  # the OS user PostgreSQL runs as can no longer write the repository
    try:
        env.cluster.execute("CREATE TABLE t AS SELECT generate_series(1, 20000) i")
        env.cluster.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 60
        findings = []
        while time.monotonic() < deadline:
            findings = inspect_server(env.server, "emr", env.dsn(), None, _inv(), env.pgbr)
            if findings[0].severity == "critical":
                break
            time.sleep(1)
        archive = findings[0]
        assert archive.check_id == "pitr.archive" and archive.severity == "critical", findings
        assert archive.suggestion_zh and "RPO" in findings[1].message_en
        with pytest.raises(Exception, match="pgbackrest backup"):
            service.backup_server(catalog, env.server, "emr", env.pgbr, "full", RUN)
        (row,) = catalog.backups_for("pg-main")
        assert row.state == "failed" and row.kind == "physical"  # never registered as a backup
    finally:
        chmod_dirs(0o700)


def _inv():
    from hisops.inventory.loader import load_inventory

    return load_inventory(
        Path(__file__).resolve().parents[2] / "inventory" / "hospital.example.yaml"
    )
