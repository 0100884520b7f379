"""A worker that cannot see the shared storage: an incident and a notification, then the task fails.

"Cannot see the storage at all" is a problem of this worker (mount missing or different), not of the
backups: they are NOT marked missing; the drill/backup task fails and
the incident says which worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hisops.catalog.records import FindingRecord
from hisops.storage.marker import CHECK_ID, StorageMismatch

if TYPE_CHECKING:
    from hisops.catalog.records import IncidentChange
    from hisops.catalog.repository import CatalogRepository
    from hisops.notify.channels import Channel


def storage_finding(exc: StorageMismatch, worker: str) -> FindingRecord:
    return FindingRecord(
        check_id=CHECK_ID,
        target_kind="system",
        target_id=f"storage:{exc.name}",
        severity="critical",
        message_zh=f"工作节点 {worker} 看不到共享存储 {exc.name}（{exc.path}）：{exc.problem_zh}",
        message_en=(
            f"worker {worker} cannot see shared storage {exc.name} ({exc.path}): {exc.problem_en}"
        ),
        suggestion_zh="检查该节点的挂载（NFS）是否与其他节点相同；修复前该节点上的备份与演练均会失败。",
        suggestion_en=(
            "Check this worker's mount (NFS) is the same as on the other workers; "
            "backups and drills on it fail until it is fixed."
        ),
        details={"path": str(exc.path), "worker": worker, "storage": exc.name},
    )


def report_storage_problem(
    repo: CatalogRepository,
    exc: StorageMismatch,
    worker: str,
    channels: Sequence[Channel],
    task: str,
) -> IncidentChange | None:
    """Open (or update) the incident for this storage and tell the supervisors when it is new."""
    from hisops.notify import send

    change = repo.upsert_incident_for(storage_finding(exc, worker), None)
    if change is not None and change.action in ("opened", "escalated"):
        title = f"共享存储不可见 Shared storage not visible · {exc.name} · {worker}"
        body = "\n".join([f"任务 task: {task}", str(exc), f"事件 incident: #{change.incident.id}"])
        send(channels, title, body, severity="critical")
    return change
