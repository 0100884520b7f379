"""The shared storage locations as a task may use them: checked against the catalog first.

Every task that reads or writes backups, reports or drill evidence gets its directory from here:
the location's marker must carry the catalog's storage id (hisops.storage.marker). When it does not,
the incident is opened, supervisors are told, and the task fails with the clear message.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from hisops.airflow import runtime
from hisops.storage.marker import BACKUPS, REPORTS, StorageMismatch


def _checked(name: str, path: Path, task: str) -> Path:
    from hisops.storage.incident import report_storage_problem
    from hisops.storage.marker import check_storage

    repo = runtime.catalog()
    try:
        check_storage(repo, name, path, actor=task)
    except StorageMismatch as exc:
        from hisops.airflow.notify_glue import channels_from_inventory

        channels = channels_from_inventory(runtime.inventory().notifications, strict=False)
        report_storage_problem(repo, exc, socket.getfqdn(), channels, task)
        raise
    return path


def backup_root(inv: Any, task: str = "hisops") -> Path:
    """``backup_storage.path``, after checking this worker sees the catalog's backup storage."""
    return _checked(BACKUPS, inv.resolve_path(inv.backup_storage.path), task)


def reports_root(inv: Any, task: str = "hisops") -> Path:
    """``reports.path`` (reports, drill evidence), after the same check."""
    return _checked(REPORTS, inv.resolve_path(inv.reports.path), task)
