"""hisops' own records: roll-ups, batched pruning, report/evidence retention, the audit floor.

Findings and metric samples older than their retention are folded into daily aggregates
(``finding_daily``, ``metric_daily`` — kept for years: trends and the KPI report read them) and
deleted in the same short transaction, ``batch_rows`` at a time, walking the
``(observed_at, id)`` index so no batch rescans what an earlier one deleted. Concurrent
inserts (the inspection) never wait on these deletes: they touch other rows, and every batch
sets ``lock_timeout`` so a stuck lock fails the batch instead of queueing the writers behind it.

Audit events: never younger than ``AUDIT_FLOOR_DAYS`` (180, 网络安全法 第二十一条), and never
without a prior export whose hash chain verifies (``hisops.audit.export.verified_export_covering``
by default): then whole exported months older than the cutoff go, in one transaction each run,
ending at an export's chain head (``hisops audit verify`` goes on from there), and an
``audit.prune`` event records what went and which export vouches for it. Without such an
export the step is "skipped" with :data:`NO_EXPORT` and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.cleanup.results import StepResult
from hisops.inventory.cleanup import AUDIT_FLOOR_DAYS

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory

#: (cutoff) → the verified export covering every event before cutoff, or None
ExportCheck = Callable[[datetime], object | None]

NO_EXPORT = (
    "无覆盖该时段且哈希链校验通过的审计导出 no audit export whose hash chain verifies covers "
    "the events before the cutoff — audit events are never pruned without one"
)
NO_WHOLE_MONTH = (
    "已有校验通过的导出，但没有整月早于保留期 verified exports exist, but no whole exported month "
    "is older than the cutoff yet — nothing pruned"
)
OUTSIDE = "路径不在报告目录内，拒绝删除 path is outside the reports folder: refused"
EVIDENCE_NOTE = "保留期满，证据文件已删除 retention reached: evidence files removed"
MAX_BATCHES = 100_000  # a safety stop, far above any real catalog


def audit_cutoff(now: datetime, days: int) -> datetime:
    """The newest moment an audit event may be pruned from; refuses anything below the floor."""
    if days < AUDIT_FLOOR_DAYS:
        raise ValueError(
            f"audit retention {days} days is below the floor of {AUDIT_FLOOR_DAYS} days"
        )
    return now - timedelta(days=days)


def prune_records(
    repo: CatalogRepository,
    inventory: Inventory,
    *,
    dry_run: bool,
    now: datetime | None = None,
    export_check: ExportCheck | None = None,
    log: Callable[[str], None] = print,
    actor: str = "retention_cleanup",
) -> list[StepResult]:
    """Every catalog retention step; one failing step is recorded and the others still run.

    ``export_check``: default :func:`hisops.audit.export.verified_export_covering`."""
    if export_check is None:
        from hisops.audit.export import verified_export_covering

        def export_check(before: datetime) -> object | None:
            return verified_export_covering(repo, before)

    now = now or datetime.now(UTC)
    ret = inventory.record_retention
    days = timedelta(days=1)
    reports_root = inventory.resolve_path(inventory.reports.path)
    steps = [
        _guarded(
            "metric_sample",
            lambda s: _rollup(
                repo,
                repo.rollup_metric_batch,
                "metric_sample",
                s,
                now - ret.metric_samples_days * days,
                inventory,
                dry_run,
            ),
        ),
        _guarded(
            "finding",
            lambda s: _rollup(
                repo,
                repo.rollup_finding_batch,
                "finding",
                s,
                now - ret.findings_days * days,
                inventory,
                dry_run,
            ),
        ),
        _guarded(
            "incident",
            lambda s: _incidents(repo, s, now - ret.incidents_days * days, ret.batch_rows, dry_run),
        ),
        _guarded(
            "inspection_run",
            lambda s: _reports(repo, s, now - ret.reports_days * days, reports_root, dry_run),
        ),
        _guarded(
            "backup_verification",
            lambda s: _evidence(
                repo, s, now - ret.evidence_days * days, reports_root / "verification", dry_run
            ),
        ),
        _guarded(
            "cleanup_run",
            lambda s: _cleanup_runs(
                repo,
                s,
                now - ret.cleanup_records_days * days,
                reports_root,
                ret.batch_rows,
                dry_run,
            ),
        ),
        _guarded(
            "audit_event",
            lambda s: _audit(
                repo, s, audit_cutoff(now, ret.audit_events_days), export_check, dry_run, actor
            ),
        ),
    ]
    for step in steps:
        if dry_run and step.state == "ok":
            step.state = "dry_run"  # nothing was due: still a preview, say so
        log(
            f"[catalog/{step.item}] {step.state}: {step.rows} 行 rows"
            + (f" — {step.reason}" if step.reason else "")
        )
    return steps


def _guarded(table: str, body: Callable[[StepResult], None]) -> StepResult:
    step = StepResult("catalog", "catalog", table)
    try:
        body(step)
    except Exception as exc:  # noqa: BLE001 - one table's failure must not stop the others
        step.state, step.reason = "failed", f"{type(exc).__name__}: {exc}"[:500]
    return step


def _rollup(
    repo: CatalogRepository,
    batch_fn,
    kind: str,
    step: StepResult,
    before: datetime,
    inventory: Inventory,
    dry_run: bool,
) -> None:
    step.details["before"] = before.isoformat()
    if dry_run:
        step.state, step.rows = "dry_run", repo.count_prunable(kind, before)
        return
    after, batches = None, 0
    while batches < MAX_BATCHES:
        done = batch_fn(before, inventory.timezone, inventory.record_retention.batch_rows, after)
        batches += 1
        step.rows += done.rows
        if done.rows < inventory.record_retention.batch_rows:
            break
        after = done.last
    step.details["batches"] = batches


def _incidents(
    repo: CatalogRepository, step: StepResult, before: datetime, batch: int, dry_run: bool
) -> None:
    step.details["before"] = before.isoformat()
    if dry_run:
        step.state, step.rows = "dry_run", repo.count_prunable("incident", before)
        return
    while (n := repo.prune_resolved_incidents(before, batch)) > 0:
        step.rows += n
        if n < batch:
            break


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _remove_file(path: Path, root: Path, step: StepResult) -> bool:
    if not _inside(path, root):
        step.note(f"{path}: {OUTSIDE}")
        step.skipped += 1
        return False
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError as exc:
        step.failed += 1
        step.note(f"{path}: {exc}")
        return False
    step.files += 1
    step.bytes_freed += size
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the day folder, when it is empty now
    return True


def _reports(
    repo: CatalogRepository, step: StepResult, before: datetime, root: Path, dry_run: bool
) -> None:
    step.details["before"] = before.isoformat()
    while runs := repo.old_inspection_runs(before, 500):
        if dry_run:
            step.state, step.rows = "dry_run", len(runs)
            return
        gone = [
            run.id
            for run in runs
            if not run.report_path or _remove_file(Path(run.report_path), root, step)
        ]
        step.rows += repo.delete_inspection_runs(gone)
        if len(gone) < len(runs):
            break  # refused files: stop, they would come back in the next query


def _evidence(
    repo: CatalogRepository, step: StepResult, before: datetime, root: Path, dry_run: bool
) -> None:
    step.details["before"] = before.isoformat()
    while drills := repo.old_evidence(before, 500):
        if dry_run:
            step.state, step.rows = "dry_run", len(drills)
            return
        cleared = []
        for drill in drills:
            folder = Path(drill.evidence_path or "").parent
            if not _inside(folder, root) or folder.resolve() == root.resolve():
                step.note(f"{folder}: {OUTSIDE}")
                step.skipped += 1
                continue
            size = (
                sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                if folder.exists()
                else 0
            )
            shutil.rmtree(folder, ignore_errors=True)
            step.files += 1
            step.bytes_freed += size
            cleared.append(drill.id)
        step.rows += repo.clear_evidence(cleared, EVIDENCE_NOTE)
        if len(cleared) < len(drills):
            break


def _cleanup_runs(
    repo: CatalogRepository,
    step: StepResult,
    before: datetime,
    root: Path,
    batch: int,
    dry_run: bool,
) -> None:
    step.details["before"] = before.isoformat()
    while runs := repo.old_cleanup_runs(before, 100):
        if dry_run:
            step.state, step.rows = "dry_run", len(runs)
            return
        for run in runs:
            if run.report_path:
                _remove_file(Path(run.report_path), root, step)
            while (n := repo.prune_cleanup_files(run.id, batch)) > 0:
                step.details["file_rows"] = step.details.get("file_rows", 0) + n
            step.rows += repo.delete_cleanup_run(run.id)


def _audit(
    repo: CatalogRepository,
    step: StepResult,
    before: datetime,
    export_check: ExportCheck,
    dry_run: bool,
    actor: str,
) -> None:
    from hisops.audit.export import prune_exported

    step.details["before"] = before.isoformat()
    step.details["floor_days"] = AUDIT_FLOOR_DAYS
    older = repo.count_audit_events_before(before)
    step.details["older_than_retention"] = older
    if export_check(before) is None:
        step.state, step.reason = "skipped", NO_EXPORT
        step.skipped = older
        return
    plan = prune_exported(repo, before, actor=actor, dry_run=dry_run)
    if plan is None:
        step.state, step.reason = "skipped", NO_WHOLE_MONTH
        step.skipped = older
        return
    step.rows = plan.rows
    step.skipped = max(0, older - plan.rows)
    step.details.update(
        through_seq=plan.through_seq,
        months=[e.month for e in plan.exports],
        head_hash=plan.last.head_hash,
    )
    if dry_run:
        step.state = "dry_run"
