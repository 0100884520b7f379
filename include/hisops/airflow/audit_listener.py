"""Airflow listener: DAG-run and task-instance state changes into the audit trail.

Registered by ``plugins/hisops_plugin.py`` (``listeners = [audit_listener]``), so every Airflow
process that loads plugins calls it: the scheduler (runs it starts, finishes, restarts after a
clear — also clears and triggers made with the ``airflow`` CLI, which never reach the
api-server), the task runner (failed, skipped, retried tasks) and ``dag.test()``. What counts is
decided by :mod:`hisops.audit.lifecycle`; this module only reads Airflow's objects into plain
data and appends to ``audit_event`` through the catalog repository.

Never twice: a hook that fires inside an api-server request (marking a run or a task) is the
audit middleware's event already (it knows the person and the address), so it is skipped here.
Never breaking: a failed write is logged; the scheduler and the task go on.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from airflow.listeners import hookimpl

from hisops.audit.lifecycle import RunChange, TaskChange, run_events, task_events

log = logging.getLogger(__name__)
#: how long a state change waits for its audit row (the catalog's connect timeout is shorter)
WRITE_TIMEOUT_S = 20


def _value(x: Any) -> str | None:
    if x is None:
        return None
    return str(getattr(x, "value", x)).lower().split(".")[-1]


def _host() -> str | None:
    try:
        return socket.gethostname()
    except OSError:  # pragma: no cover
        return None


def _in_api_request() -> bool:
    from hisops.airflow.audit_middleware import in_api_request

    return in_api_request()


def _record(events: list[Any]) -> None:
    """Append ``events`` from a short-lived thread of its own, waited for.

    Airflow's ORM session is thread-local: a connection lookup made on the scheduler's own thread
    (the metastore secrets backend) shares the session of the scheduler loop and broke its
    transaction (runs stayed ``queued``). Another thread has a session of its own.
    """
    if not events:
        return
    errors: list[BaseException] = []

    def write() -> None:
        try:
            _write(events)
        except BaseException as exc:  # noqa: BLE001 - reported below, on the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=write, name="hisops-audit-listener", daemon=True)
    worker.start()
    worker.join(WRITE_TIMEOUT_S)
    if worker.is_alive():
        log.error(
            "hisops audit listener: writing %d event(s) takes > %s s", len(events), WRITE_TIMEOUT_S
        )
    elif errors:
        raise errors[0]


def _write(events: list[Any]) -> None:
    from hisops.airflow import runtime

    repo = runtime.catalog()
    for e in events:
        repo.add_audit_event(
            e.actor,
            e.action,
            e.target,
            e.result,
            details=e.details,
            dag_id=e.dag_id,
            run_id=e.run_id,
            source=e.source,
            reason=e.reason,
        )


def _run_change(dag_run: Any, state: str, msg: str | None) -> RunChange:
    return RunChange(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state=state,
        run_type=_value(getattr(dag_run, "run_type", None)),
        triggered_by=_value(getattr(dag_run, "triggered_by", None)),
        triggering_user=getattr(dag_run, "triggering_user_name", None) or None,
        clear_number=int(getattr(dag_run, "clear_number", 0) or 0),
        msg=msg,
        host=_host(),
    )


def _on_run(dag_run: Any, state: str, msg: str | None) -> None:
    try:
        if _in_api_request():
            return  # a mark through the api-server: the middleware's event
        _record(run_events(_run_change(dag_run, state, msg)))
    except Exception:  # noqa: BLE001 - auditing must never stop the scheduler
        log.exception("hisops audit listener: could not record run %s", state)


def _task_user(ti: Any) -> str | None:
    context = getattr(ti, "_ti_context_from_server", None)
    run = getattr(context, "dag_run", None) or getattr(ti, "dag_run", None)
    return getattr(run, "triggering_user_name", None) or None


def _on_task(ti: Any, state: str, previous: Any, error: Any = None) -> None:
    try:
        if _in_api_request():
            return  # a mark through the api-server: the middleware's event
        change = TaskChange(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            state=state,
            map_index=-1 if getattr(ti, "map_index", None) is None else int(ti.map_index),
            try_number=int(getattr(ti, "try_number", 1) or 1),
            previous_state=_value(previous),
            error=f"{type(error).__name__}: {error}"[:400]
            if isinstance(error, BaseException)
            else (str(error)[:400] if error else None),
            host=_host(),
        )
        _record(task_events(change, _task_user(ti)))
    except Exception:  # noqa: BLE001 - auditing must never fail the task
        log.exception("hisops audit listener: could not record task %s", state)


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    _on_run(dag_run, "running", msg)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _on_run(dag_run, "success", msg)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _on_run(dag_run, "failed", msg)


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    _on_task(task_instance, "running", previous_state)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _on_task(task_instance, "failed", previous_state, error)


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _on_task(task_instance, "skipped", previous_state)
