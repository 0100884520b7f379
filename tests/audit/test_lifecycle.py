"""Which run and task state changes the Airflow listener records (pure decisions)."""

from __future__ import annotations

from hisops.audit.lifecycle import RunChange, TaskChange, run_events, task_events
from hisops.audit.requests import ACTION_NAMES


def _run(**kw) -> RunChange:
    return RunChange(**{"dag_id": "db_backup", "run_id": "r1", "state": "running", **kw})


def test_a_cli_trigger_is_recorded_as_a_trigger_and_a_start_by_the_os_user():
    events = run_events(_run(triggered_by="cli", triggering_user="zhang", run_type="manual"))
    assert [(e.action, e.actor, e.result) for e in events] == [
        ("dag.trigger", "zhang", "success"),
        ("dag_run.start", "zhang", "success"),
    ]
    assert events[0].details["via"] == "命令行 CLI" and events[0].target == "dag_run:db_backup/r1"


def test_a_ui_trigger_is_only_a_start_the_middleware_recorded_the_request():
    (event,) = run_events(_run(triggered_by="ui", triggering_user="li"))
    assert event.action == "dag_run.start" and event.details["triggered_by"] == "ui"


def test_scheduled_runs_name_the_scheduler_restarts_and_failures():
    (start,) = run_events(_run(triggered_by="timetable", run_type="scheduled"))
    assert start.actor == "db_backup (scheduler)"
    (restart,) = run_events(_run(triggered_by="cli", clear_number=2))
    assert restart.action == "dag_run.restart" and restart.details["clear_number"] == 2
    (done,) = run_events(_run(state="failed", msg="task_failure"))
    assert (done.action, done.result) == ("dag_run.finish", "failure")
    assert "task_failure" in done.reason
    (ok,) = run_events(_run(state="success"))
    assert (ok.result, ok.reason) == ("success", None)


def test_task_events_failed_skipped_rerun_but_not_a_first_try_success():
    base = {"dag_id": "d", "run_id": "r", "task_id": "t"}
    assert task_events(TaskChange(**base, state="success")) == []
    assert task_events(TaskChange(**base, state="running")) == []
    (failed,) = task_events(TaskChange(**base, state="failed", error="boom", map_index=3), "wang")
    assert (failed.action, failed.actor, failed.target) == ("task.failed", "wang", "task:d/r/t[3]")
    assert "boom" in failed.reason
    (rerun,) = task_events(TaskChange(**base, state="running", try_number=2))
    assert rerun.action == "task.rerun" and rerun.details["try_number"] == 2
    (skipped,) = task_events(TaskChange(**base, state="skipped"))
    assert skipped.action == "task.skipped"


def test_every_lifecycle_action_has_a_chinese_name():
    actions = {
        e.action
        for e in run_events(_run(triggered_by="cli"))
        + run_events(_run(clear_number=1))
        + run_events(_run(state="success"))
        + task_events(TaskChange("d", "r", "t", "failed"))
        + task_events(TaskChange("d", "r", "t", "skipped"))
        + task_events(TaskChange("d", "r", "t", "running", try_number=3))
    }
    assert actions <= set(ACTION_NAMES)
