"""Airflow's own metadata (dag runs, task instances, XComs, log table) and its task log files.

Why a subprocess: a task in Airflow 3 has no metadata-DB session (the task runner replaces the
ORM with a blocker and points ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` at
``airflow-db-not-allowed:///``), so ``airflow db clean`` called in-process fails
(apache/airflow#50601). The supported route used here is Airflow's own CLI,
``airflow db clean --clean-before-timestamp … --tables … --skip-archive --yes --batch-size …``,
run as a child process whose environment points ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` at the
metadata database through an Airflow connection (``hisops_airflow_db``). Airflow's rules
apply unchanged: the latest non-manual run row of every DAG is kept (the scheduler continues
from it); task instances, their history and XComs are cleaned by their own age (so those of a
kept run older than N days go too) and with their runs (foreign keys cascade).

Least privilege for the role behind that connection (PostgreSQL), besides the SELECT on FAB's
``ab_*`` tables the role lookup needs:
``GRANT SELECT, DELETE ON dag_run, task_instance, task_instance_history, xcom, log, job,
deadline, task_state_store TO hisops_airflow_clean; GRANT INSERT ON log TO …`` (the CLI logs its
own invocation) ``; GRANT CREATE ON SCHEMA public TO …`` — ``db clean`` copies the doomed rows
into a ``_airflow_deleted__*`` table before deleting, even with ``--skip-archive`` (it drops
that table right after), so it needs CREATE on the schema; it owns only what it creates.
``tests/cleanup/test_airflow_meta.py`` runs the cleanup as exactly such a role.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.cleanup.hostfiles import FileSink, HostContext, clean_rule, prepare
from hisops.cleanup.results import StepResult
from hisops.inventory.cleanup import CleanupRule, Protected

if TYPE_CHECKING:
    from hisops.targets.runner import CommandRunner

#: the tables named to ``db clean``; their dependants (task_instance_history, xcom, deadline,
#: task_state_store) are added by Airflow itself
TABLES = ("dag_run", "task_instance", "xcom", "log", "job")
CHECKING = re.compile(r"^Checking table (\S+)\s*$")
FOUND = re.compile(r"^Found (\d+) rows meeting deletion criteria")
BLOCKED_ENV = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET",
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN",
)
TASK_LOGS = "airflow-task-logs"
#: the least privilege ``airflow db clean`` needs (PostgreSQL; ``{role}`` = an SQL identifier);
#: the demo creates its cleaner role with exactly these, the test runs db clean as such a role
CLEANER_TABLES = (
    "dag_run",
    "task_instance",
    "task_instance_history",
    "xcom",
    "log",
    "job",
    "deadline",
    "task_state_store",
)
CLEANER_GRANTS = (
    "GRANT SELECT, DELETE ON " + ", ".join(CLEANER_TABLES) + " TO {role}",
    "GRANT INSERT ON log TO {role}",
    "GRANT CREATE ON SCHEMA public TO {role}",
)


def db_clean_command(
    before: datetime, *, dry_run: bool, batch_size: int, tables: tuple[str, ...] = TABLES
) -> list[str]:
    # No --dag-ids: Airflow 3.3 applies it to `deadline`, which has no dag_id column, and fails.
    cmd = [
        sys.executable,
        "-m",
        "airflow",
        "db",
        "clean",
        "--clean-before-timestamp",
        before.isoformat(),
        "--tables",
        ",".join(tables),
        "--skip-archive",
        "--yes",
        "--batch-size",
        str(batch_size),
        "--error-on-cleanup-failure",
    ]
    return cmd + (["--dry-run"] if dry_run else [])


def clean_metadata(
    sqlalchemy_url: str,
    before: datetime,
    *,
    dry_run: bool,
    batch_size: int = 5000,
    timeout: float = 3600,
) -> list[StepResult]:
    """One step per metadata table with the rows ``db clean`` found
    (and, unless dry run, deleted)."""
    env = {k: v for k, v in os.environ.items() if k not in BLOCKED_ENV}
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sqlalchemy_url
    try:
        proc = subprocess.run(
            db_clean_command(before, dry_run=dry_run, batch_size=batch_size),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return [
            StepResult("airflow", "airflow", "db clean", "failed", f"timed out after {timeout}s")
        ]
    steps = parse_db_clean(proc.stdout, dry_run)
    if proc.returncode != 0:
        tail = _why(proc.stderr or proc.stdout)
        steps.append(
            StepResult(
                "airflow",
                "airflow",
                "db clean",
                "failed",
                f"airflow db clean exit {proc.returncode}: {_redact(tail, sqlalchemy_url)}",
            )
        )
    for step in steps:
        step.details["before"] = before.isoformat()
    return steps


def _why(output: str) -> str:
    """The informative lines of a failed db clean (errors, not the traceback frames)."""
    lines = [
        ln.strip()
        for ln in output.splitlines()
        if re.search(r"Error|ERROR|denied|not clean|FATAL", ln)
        and not ln.strip().startswith("File ")
    ]
    return " | ".join(lines[-4:])[-800:] or output.strip()[-800:]


def _redact(text: str, url: str) -> str:
    secret = re.sub(r"^[^:]+://[^:@/]*:([^@]*)@.*$", r"\1", url)
    return text.replace(secret, "***") if secret and secret != url else text


def parse_db_clean(stdout: str, dry_run: bool) -> list[StepResult]:
    steps, table = [], None
    for line in stdout.splitlines():
        if m := CHECKING.match(line.strip()):
            table = m.group(1)
        elif (m := FOUND.match(line.strip())) and table:
            steps.append(
                StepResult(
                    "airflow",
                    "airflow",
                    table,
                    "dry_run" if dry_run else "ok",
                    rows=int(m.group(1)),
                )
            )
            table = None
    return steps


def clean_task_logs(
    folder: Path,
    days: int,
    runner: CommandRunner,
    *,
    dry_run: bool,
    sink: FileSink,
    protected: list[Protected],
) -> list[StepResult]:
    """Task log files (``**/*.log``) older than ``days`` under Airflow's local log folder.

    The same engine as host rules (streamed, writers skipped, no symlinks followed); afterwards
    empty run/task folders older than ``days`` are removed.
    """
    rule = CleanupRule(name=TASK_LOGS, paths=[f"{folder}/**/*.log"], older_than_days=days)
    ctx = HostContext("airflow", runner, protected, dry_run, sink)
    prepare(ctx)
    step = clean_rule(ctx, rule, list(rule.paths))
    step.scope = "task_logs"
    if not dry_run and step.state == "ok":
        res = runner.run(
            f"find -P {_q(str(folder))} -xdev -mindepth 1 -depth -type d -empty "
            f"-mmin +{days * 1440} -delete -print | wc -l",
            timeout=600,
        )
        step.details["empty_dirs_removed"] = int(res.stdout.strip() or 0) if res.ok else 0
    sink.flush()
    return [step]


def _q(text: str) -> str:
    from hisops.cleanup.hostscript import q

    return q(text)
