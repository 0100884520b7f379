"""Is this task try still the one Airflow runs? (The lease a long task checks before publishing.)

When a Celery worker's main process is killed, its pool process — the task's supervisor, which
heartbeats to the api-server — dies with it, but the task process it forked lives on as an orphan.
Airflow then fails the try (no heartbeat) and retries it elsewhere, while the orphan would finish
and register its result. The supervisor is the only way a task process talks to Airflow: asking it
for this try's state fails when it is gone, and says "running" only while Airflow still runs it
(a live supervisor whose try Airflow gave up is told so at its next heartbeat and kills the task).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _state_key(task_id: str, map_index: int | None) -> str:
    return task_id if map_index is None or map_index < 0 else f"{task_id}_{map_index}"


def current_try_lease(context: dict[str, Any]) -> Callable[[], bool]:
    """A check that is True while this try is still the running one (False once it is orphaned)."""
    ti = context["ti"]
    dag_id, task_id, run_id = ti.dag_id, ti.task_id, ti.run_id
    map_index = getattr(ti, "map_index", -1)

    def still_running() -> bool:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        try:
            states = RuntimeTaskInstance.get_task_states(
                dag_id=dag_id,
                task_ids=[task_id],
                run_ids=[run_id],
                map_index=None if map_index < 0 else map_index,
            )
        except Exception as exc:  # noqa: BLE001 - no supervisor (orphaned) or no answer: not ours any more
            log.error(
                "本任务已失去调度 lost contact with Airflow (%s: %s): "
                "treating this try as superseded",
                type(exc).__name__,
                exc,
            )
            return False
        state = (states.get(run_id) or {}).get(_state_key(task_id, map_index))
        if state != "running":
            log.error(
                "Airflow 不再运行本次尝试 this try is no longer running in Airflow (state %s)",
                state,
            )
        return state == "running"

    return still_running
