"""Which DAG-run and task-instance state changes are audit events (Airflow listener side).

Pure (no Airflow, no I/O): the listener (``hisops.airflow.audit_listener``) turns Airflow's
objects into :class:`RunChange` / :class:`TaskChange` and records what :func:`run_events` /
:func:`task_events` return. The api-server middleware already records every request a person
makes there (trigger, clear, mark …); the listener adds what happens elsewhere — runs started
by the scheduler or triggered with ``airflow dags trigger``, runs restarted after a clear (from
the UI, the API or ``airflow tasks clear``), failed and self-skipped tasks, retries and re-runs,
and the end of every run. A state change made inside an api-server request (a mark) is the
middleware's event and is never recorded twice.

Volume stays small: per run one start and one finish event, plus one per failed, skipped or
re-run task; a task that simply succeeds on its first try is covered by the run's finish event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Airflow's DagRunTriggeredByType values, as the audit page shows them
VIA_NAMES = {
    "cli": "命令行 CLI",
    "rest_api": "REST API",
    "ui": "界面 UI",
    "timetable": "调度器 scheduler",
    "asset": "资产触发 asset",
    "backfill": "回填 backfill",
    "operator": "其他 DAG 触发 operator",
    "test": "dag.test",
}


@dataclass(frozen=True)
class RunChange:
    """A DAG run that became running, success or failed (as plain data)."""

    dag_id: str
    run_id: str
    state: str  # running | success | failed
    run_type: str | None = None
    triggered_by: str | None = None  # DagRunTriggeredByType value, e.g. "cli", "ui", "timetable"
    triggering_user: str | None = None
    clear_number: int = 0
    msg: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class TaskChange:
    """A task instance that became running, success, failed or skipped (as plain data)."""

    dag_id: str
    run_id: str
    task_id: str
    state: str  # running | success | failed | skipped
    map_index: int = -1
    try_number: int = 1
    previous_state: str | None = None
    error: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class LifecycleEvent:
    actor: str
    action: str
    target: str
    result: str  # success | failure
    dag_id: str
    run_id: str
    source: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def run_actor(change: RunChange) -> str:
    """The person behind a run, else the scheduler (the same wording as ``RunInfo.actor``)."""
    return change.triggering_user or f"{change.dag_id} (scheduler)"


def run_events(change: RunChange) -> list[LifecycleEvent]:
    via = change.triggered_by or "unknown"
    common = {
        "actor": run_actor(change),
        "target": f"dag_run:{change.dag_id}/{change.run_id}",
        "dag_id": change.dag_id,
        "run_id": change.run_id,
        "source": change.host,
    }
    details: dict[str, Any] = {
        "triggered_by": via,
        "via": VIA_NAMES.get(via, via),
        "run_type": change.run_type,
        "clear_number": change.clear_number,
        "recorded_by": "listener",
    }
    if change.msg:
        details["msg"] = change.msg[:300]
    if change.state == "running":
        out = []
        if change.clear_number == 0 and via == "cli":
            # `airflow dags trigger` writes to the metadata DB directly: no request to record
            out.append(
                LifecycleEvent(action="dag.trigger", result="success", details=details, **common)
            )
        action = "dag_run.restart" if change.clear_number > 0 else "dag_run.start"
        out.append(LifecycleEvent(action=action, result="success", details=details, **common))
        return out
    if change.state in ("success", "failed"):
        return [
            LifecycleEvent(
                action="dag_run.finish",
                result="success" if change.state == "success" else "failure",
                reason=None if change.state == "success" else f"运行失败 run failed: {change.msg}",
                details={**details, "state": change.state},
                **common,
            )
        ]
    return []


def task_events(change: TaskChange, run_actor_name: str | None = None) -> list[LifecycleEvent]:
    """Failed, self-skipped and re-run tasks (a first-try success needs no event of its own)."""
    task = change.task_id if change.map_index < 0 else f"{change.task_id}[{change.map_index}]"
    common = {
        "actor": run_actor_name or f"{change.dag_id} (scheduler)",
        "target": f"task:{change.dag_id}/{change.run_id}/{task}",
        "dag_id": change.dag_id,
        "run_id": change.run_id,
        "source": change.host,
    }
    details = {
        "try_number": change.try_number,
        "previous_state": change.previous_state,
        "recorded_by": "listener",
    }
    if change.state == "failed":
        reason = f"任务失败 task failed: {change.error}"[:500] if change.error else None
        return [
            LifecycleEvent(
                action="task.failed", result="failure", reason=reason, details=details, **common
            )
        ]
    if change.state == "skipped":
        return [LifecycleEvent(action="task.skipped", result="success", details=details, **common)]
    if change.state == "running" and change.try_number > 1:
        return [LifecycleEvent(action="task.rerun", result="success", details=details, **common)]
    return []
