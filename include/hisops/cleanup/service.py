"""The cleanup run: host files for every host with rules, recorded step by step in the catalog.

One service call per DAG task (the adapters in ``hisops.airflow.cleanup_tasks`` only translate
the Airflow context). Every step result and every file action is stored; an unreachable host
is a failed step for its rules and the other hosts are still cleaned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hisops.cleanup.hostfiles import FileSink, clean_host
from hisops.cleanup.results import StepResult
from hisops.inventory.cleanup import DATA_DIR, Protected
from hisops.targets.errors import TargetUnreachable

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Database, Host, Inventory, MaintenanceWindow
    from hisops.runinfo import RunInfo
    from hisops.targets.runner import CommandRunner

log = logging.getLogger(__name__)

CLEANUP_ACTION = "retention_cleanup"


def resolve_dry_run(
    choice: str,
    run: RunInfo,
    window: MaintenanceWindow | None = None,
    now: datetime | None = None,
    tz: str = "Asia/Shanghai",
) -> bool:
    """'yes' → preview; 'no' → act (a person chose it); 'auto' → only a scheduled run *inside the
    maintenance window* acts — anything started by hand previews, and so does a scheduled run that
    starts outside the window (Airflow schedules the latest past interval at once when the DAG is
    unpaused, and a busy scheduler may start late: neither may delete in clinic hours)."""
    if choice not in ("auto", "yes", "no"):
        raise ValueError(f"dry_run must be auto, yes or no, not {choice!r}")
    if choice != "auto":
        return choice == "yes"
    if not run.is_scheduled:
        return True
    if window is None:
        return False
    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz))
    return not window.contains(moment.time())


def start_run(repo: CatalogRepository, run: RunInfo, dry_run: bool) -> int:
    run_id = repo.start_cleanup_run(run.dag_id, run.run_id, dry_run)
    repo.add_audit_event(
        run.actor,
        f"{CLEANUP_ACTION}.start",
        None,
        "success",
        details={"dry_run": dry_run, "cleanup_run_id": run_id},
        **run.audit_fields(),
    )
    return run_id


def server_data_directories(
    inventory: Inventory, dsn_for: Callable[[Database], str] | None
) -> tuple[list[Protected], list[str]]:
    """Second guard: ``SHOW data_directory`` of every inventory database (protected on every host).

    A database that does not answer (or does not let the monitoring user read the setting:
    it needs superuser or pg_read_all_settings) is listed in the notes; the inventory's
    ``data_directories`` remain the guard for it.
    """
    if dsn_for is None:
        return [], []
    from hisops.targets.postgres import pg_session

    found, notes = [], []
    for _, db in inventory.all_databases():
        try:
            with (
                pg_session(dsn_for(db), target=db.id, application_name="hisops-cleanup") as conn,
                conn.cursor() as cur,
            ):
                cur.execute("SHOW data_directory")
                directory = cur.fetchone()[0]
        except Exception as exc:  # noqa: BLE001 - unreachable / not permitted: note it, keep going
            notes.append(
                f"{db.id}: SHOW data_directory — {type(exc).__name__}: {str(exc).strip()[:200]}"
            )
            continue
        if directory:
            found.append(Protected(directory, ("server", db.id, "data_directory"), DATA_DIR))
    return found, notes


def clean_host_files(
    repo: CatalogRepository,
    inventory: Inventory,
    cleanup_run_id: int,
    *,
    dry_run: bool,
    runner_for: Callable[[Host], CommandRunner],
    extra_protected: Iterable[Protected] = (),
    notes: Iterable[str] = (),
    echo: Callable[[str], None] | None = print,
    host_ids: Iterable[str] | None = None,
) -> list[StepResult]:
    """Every host with ``cleanup:`` rules (or those named); steps and files go to the catalog."""
    wanted = set(host_ids) if host_ids is not None else None
    hosts = [
        h for _, h in inventory.all_hosts() if h.cleanup and (wanted is None or h.id in wanted)
    ]
    repo.clear_cleanup_files(cleanup_run_id, [h.id for h in hosts])
    extra = list(extra_protected)
    steps: list[StepResult] = []
    for host in hosts:
        sink = FileSink(lambda rows: repo.add_cleanup_files(cleanup_run_id, rows), echo)
        try:
            runner = runner_for(host)
        except Exception as exc:  # noqa: BLE001 - a broken connection definition is this host's problem
            steps += [
                StepResult("host", host.id, r.name, "failed", f"主机不可达 host unreachable: {exc}")
                for r in host.cleanup
            ]
            continue
        try:
            host_steps = clean_host(
                inventory, host, runner, dry_run=dry_run, sink=sink, extra_protected=extra
            )
        except TargetUnreachable as exc:
            host_steps = [
                StepResult("host", host.id, r.name, "failed", f"主机不可达 host unreachable: {exc}")
                for r in host.cleanup
            ]
        finally:
            runner.close()
        steps += host_steps
    notes = list(notes)
    if notes:
        steps.append(
            StepResult(
                "host",
                "*",
                "server-data-directory",
                "skipped",
                "部分数据库未返回 data_directory some databases did not report data_directory "
                "(the inventory's data_directories still guard them)",
                notes=notes[:20],
            )
        )
    repo.add_cleanup_steps(cleanup_run_id, [s.record() for s in steps], replace_scope="host")
    return steps


# --------------------------------------------------------------------------- one call per DAG task


def counts(steps: Sequence[StepResult]) -> dict[str, Any]:
    """A task's small return value: how much its steps did."""
    return {
        "steps": len(steps),
        "files": sum(s.files for s in steps),
        "rows": sum(s.rows for s in steps),
        "bytes_freed": sum(s.bytes_freed for s in steps),
        "failed": sum(1 for s in steps if s.state in ("failed", "protected")),
    }


def open_run(
    repo: CatalogRepository, inventory: Inventory, run: RunInfo, choice: str
) -> dict[str, Any]:
    """Decide dry run or not (see :func:`resolve_dry_run`) and open the run in the catalog."""
    dry_run = resolve_dry_run(choice, run, inventory.maintenance_window, tz=inventory.timezone)
    return {"cleanup_run_id": start_run(repo, run, dry_run), "dry_run": dry_run}


def host_files(
    repo: CatalogRepository,
    inventory: Inventory,
    started: Mapping[str, Any],
    *,
    dsn_for: Callable[[Database], str] | None,
    runner_for: Callable[[Host], CommandRunner],
) -> dict[str, Any]:
    """Every host's file rules, with the servers' own data directories protected too."""
    extra, notes = server_data_directories(inventory, dsn_for)
    steps = clean_host_files(
        repo,
        inventory,
        started["cleanup_run_id"],
        dry_run=started["dry_run"],
        runner_for=runner_for,
        extra_protected=extra,
        notes=notes,
    )
    return counts(steps)


def catalog_records(
    repo: CatalogRepository, inventory: Inventory, started: Mapping[str, Any]
) -> dict[str, Any]:
    """Prune the catalog's own old records; the steps are recorded (scope ``catalog``)."""
    from hisops.cleanup.records import prune_records

    steps = prune_records(repo, inventory, dry_run=started["dry_run"])
    repo.add_cleanup_steps(
        started["cleanup_run_id"], [s.record() for s in steps], replace_scope="catalog"
    )
    return counts(steps)


def airflow_metadata(
    repo: CatalogRepository, inventory: Inventory, started: Mapping[str, Any], url: str
) -> dict[str, Any]:
    """`airflow db clean` of the metadata DB at ``url`` (records older than the retention)."""
    from hisops.cleanup.airflow_meta import clean_metadata

    ret = inventory.record_retention
    before = datetime.now(UTC) - timedelta(days=ret.airflow_metadata_days)
    steps = clean_metadata(url, before, dry_run=started["dry_run"], batch_size=ret.batch_rows)
    repo.add_cleanup_steps(
        started["cleanup_run_id"], [s.record() for s in steps], replace_scope="airflow"
    )
    return counts(steps)


def task_logs(
    repo: CatalogRepository,
    inventory: Inventory,
    started: Mapping[str, Any],
    log_folder: Path,
    runner: CommandRunner,
) -> dict[str, Any]:
    """Airflow's task log files older than the retention (never a protected path)."""
    from hisops.cleanup.airflow_meta import clean_task_logs

    cid = started["cleanup_run_id"]
    repo.clear_cleanup_files(cid, ["airflow"])
    sink = FileSink(lambda rows: repo.add_cleanup_files(cid, rows), print)
    protected = inventory.protected_paths()  # backup storage, reports and evidence
    steps = clean_task_logs(
        log_folder,
        inventory.record_retention.task_logs_days,
        runner,
        dry_run=started["dry_run"],
        sink=sink,
        protected=protected,
    )
    repo.add_cleanup_steps(cid, [s.record() for s in steps], replace_scope="task_logs")
    return counts(steps)
