"""The production path for real: CeleryExecutor with two workers, Redis, the real scheduler,
dag-processor and api-server. Long: `./test.sh -m long` (.ci/run runs it after the default suite)."""

from __future__ import annotations

import pytest

from tests.celery.conftest import WORKERS, Stack

pytestmark = pytest.mark.long


def _hostnames(stack: Stack, dag_id: str, run_id: str) -> dict[str, str]:
    """task (map index) → the Celery worker node that ran it (the TI's hostname)."""
    tis = stack.task_instances(dag_id, run_id)
    return {f"{dag_id}.{ti['task_id']}[{ti['map_index']}]": ti["hostname"] for ti in tis
            if ti["state"] == "success"}


def _verification_runs(stack: Stack) -> list[dict]:
    return [r for r in stack.runs("backup_verification") if r["run_type"] == "asset_triggered"]


def test_routine_runs_across_two_workers(celery_stack: Stack, mailbox) -> None:
    stack, ran_on = celery_stack, {}
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
