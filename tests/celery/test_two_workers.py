"""The production path for real: CeleryExecutor with two workers, Redis, the real scheduler,
dag-processor and api-server. Long: `./test.sh -m long` (.ci/run
runs it after the default suite)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg2
import pytest
from hisops.catalog.repository import CatalogRepository

from tests.celery.conftest import HEARTBEAT_TIMEOUT, WORKERS, Stack

pytestmark = pytest.mark.long


def _hostnames(stack: Stack, dag_id: str, run_id: str) -> dict[str, str]:
    """task (map index) → the Celery worker node that ran it (the TI's hostname)."""
    tis = stack.task_instances(dag_id, run_id)
    return {
        f"{dag_id}.{ti['task_id']}[{ti['map_index']}]": ti["hostname"]
        for ti in tis
        if ti["state"] == "success"
    }


def _verification_runs(stack: Stack) -> list[dict]:
    return [r for r in stack.runs("backup_verification") if r["run_type"] == "asset_triggered"]


def test_routine_runs_across_two_workers(celery_stack: Stack, celery_mailbox) -> None:
    stack, ran_on, mailbox = celery_stack, {}, celery_mailbox
    run = stack.trigger("hisops_selfcheck")
    assert stack.finish("hisops_selfcheck", run) == "success"
    ran_on.update(_hostnames(stack, "hisops_selfcheck", run))

    stack.unpause("backup_verification")  # asset-triggered by the backup's event
    run = stack.trigger("db_backup")
    assert stack.finish("db_backup", run) == "success"
    ran_on.update(_hostnames(stack, "db_backup", run))
    drills = stack.wait("the asset-triggered drill", lambda: _verification_runs(stack), 180)
    drill = drills[0]["dag_run_id"]
    assert stack.finish("backup_verification", drill, timeout=400) == "success"
    ran_on.update(_hostnames(stack, "backup_verification", drill))

    run = stack.trigger("daily_inspection")
    assert stack.finish("daily_inspection", run, timeout=400) == "success"
    ran_on.update(_hostnames(stack, "daily_inspection", run))
    assert mailbox.subjects("巡检报告"), [m["subject"] for m in mailbox.messages]

    print("task → worker:", ran_on)
    assert set(ran_on.values()) == set(WORKERS), ran_on  # both workers ran tasks, nothing else did


def _backup_ti(stack: Stack, run_id: str) -> dict | None:
    return next(
        (ti for ti in stack.task_instances("db_backup", run_id) if ti["task_id"] == "backup"), None
    )


def _blocked_dump(pg, dbname: str) -> bool:
    """pg_dump of the backup is waiting for our lock (the backup is in the middle of its work)."""
    conn = psycopg2.connect(pg.dsn(dbname))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event_type = 'Lock' AND application_name LIKE 'hisops-backup%%'",
                (dbname,),
            )
            return cur.fetchone()[0] > 0
    finally:
        conn.close()


def test_a_worker_killed_mid_backup_leaves_one_drilled_backup_and_no_orphan(
    celery_stack: Stack, pg
) -> None:
    """SIGKILL of the worker running db_backup: its orphaned task process must not register the
    backup after Airflow gave up on that try; the retry's backup is the
    only one, and it is drilled."""
    stack = celery_stack
    repo = CatalogRepository.from_url(stack.env["HISOPS_TEST_CATALOG_URL"])
    his_db, storage = stack.env["HISOPS_TEST_HIS_DB"], Path(stack.env["HISOPS_TEST_STORAGE"])
    before = {b.id for b in repo.backups_for("d1")}
    blocker = psycopg2.connect(pg.dsn(his_db))  # holds the backup in the middle of pg_dump
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE patient IN ACCESS EXCLUSIVE MODE")
    try:
        run = stack.trigger("db_backup")
        stack.wait("the backup to block on our lock", lambda: _blocked_dump(pg, his_db), 180)
        first = _backup_ti(stack, run)
        assert first["state"] == "running" and first["hostname"] in WORKERS, first
        [orphan_id] = [b.id for b in repo.backups_for("d1") if b.id not in before]
        assert repo.get_backup(orphan_id).state == "running"
        os.kill(
            stack.worker_pid(first["hostname"]), signal.SIGKILL
        )  # the worker's main process only

        # Airflow gives up on the try once its heartbeats stop (the task process lives on, orphaned)
        stack.wait(
            "Airflow to fail the orphaned try",
            lambda: _backup_ti(stack, run)["state"] in ("up_for_retry", "failed"),
            HEARTBEAT_TIMEOUT + 150,
        )
    finally:
        blocker.rollback()
        blocker.close()
    # the orphan resumes and reaches the publish step: it must refuse,
    # not register backup #orphan_id
    stack.wait("the orphan to give up", lambda: repo.get_backup(orphan_id).state != "running", 120)
    orphan = repo.get_backup(orphan_id)
    print(f"orphaned backup #{orphan_id}: {orphan.state}: {orphan.error}")
    assert orphan.state == "failed" and "superseded" in (orphan.error or ""), orphan

    # the retry (cleared now instead of waiting the retry delay) makes
    # the one backup, then the drill
    resp = stack.api(
        "POST",
        "/api/v2/dags/db_backup/clearTaskInstances",
        {"dag_run_id": run, "task_ids": ["backup"], "only_failed": False, "dry_run": False},
    )
    assert resp.status_code == 200, resp.text
    assert stack.finish("db_backup", run, timeout=300) == "success"
    retry = _backup_ti(stack, run)
    assert retry["try_number"] > first["try_number"] and retry["hostname"] in WORKERS
    new = [b for b in repo.backups_for("d1") if b.id not in before]
    registered = [b for b in new if b.state in ("completed", "verified")]
    assert len(registered) == 1 and {b.state for b in new} <= {"completed", "verified", "failed"}, (
        new
    )
    assert not list(storage.glob("d1/.partial-*")), list(storage.glob("d1/*"))

    def drilled() -> bool:
        return repo.get_backup(registered[0].id).state == "verified"

    stack.wait("the drill of the retry's backup", drilled, 400)

    # not asserted (not observed within 180 s in the first run): the killed worker's unacknowledged
    # message coming back after the visibility timeout; the try it
    # carried is refused by Airflow anyway
    repo.dispose()
