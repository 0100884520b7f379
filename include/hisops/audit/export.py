"""`hisops audit export --month YYYY-MM`: one month of the audit trail with its chain head.

The file (JSON Lines, 0600 in a 0700 folder) starts with a header (period, the hash the first
event links to), holds every event of the month in chain order with its hash, and ends with
the chain head (last seq and hash). The export is recorded in the catalog; pruning old audit
events (issue 12's cleanup) asks :func:`verified_export_covering` first.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hisops.audit.verify import verify_chain

if TYPE_CHECKING:
    from hisops.catalog.records import AuditEventRecord, AuditExportRecord
    from hisops.catalog.repository import CatalogRepository

FORMAT = "hisops-audit-export/1"


class ExportError(ValueError):
    """A bad month or an export that cannot be written."""


def month_period(month: str, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of ``YYYY-MM`` in the timezone ``tz``."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=ZoneInfo(tz))
    except (ValueError, TypeError) as exc:
        raise ExportError(f"--month {month!r}: expected YYYY-MM (e.g. 2026-11)") from exc
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=ZoneInfo(tz))
    return start, end


def _event_line(e: AuditEventRecord) -> str:
    return json.dumps(asdict(e), ensure_ascii=False, default=str, sort_keys=True)


def _events(repo: CatalogRepository, first: int | None, last: int | None):
    seq = (first or 1) - 1
    while last is not None and seq < last:
        batch = [e for e in repo.audit_chain(seq, 5000) if e.seq is not None and e.seq <= last]
        if not batch:
            return
        yield from batch
        seq = batch[-1].seq or last


def _write(path: Path, lines) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for line in lines:
            data = line + "\n"
            out.write(data)
            digest.update(data.encode())
    os.chmod(path, 0o600)
    return digest.hexdigest()


def export_month(
    repo: CatalogRepository, month: str, out_dir: Path, *, actor: str, tz: str = "Asia/Shanghai"
) -> AuditExportRecord:
    """Write and record the export of ``month``; the chain is verified first (``chain_ok``)."""
    start, end = month_period(month, tz)
    report = verify_chain(repo)
    first, last, count = repo.audit_seq_range(start, end)
    prev = repo.audit_event_at_seq(first).prev_hash if first else None
    header: dict[str, Any] = {
        "format": FORMAT,
        "month": month,
        "timezone": tz,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "first_seq": first,
        "links_to": prev,
        "chain_ok": report.ok,
        "chain_problems": report.problems,
    }
    head = repo.audit_event_at_seq(last) if last else None
    footer = {
        "chain_head": {"last_seq": last, "hash": head.hash if head else None, "events": count}
    }
    path = out_dir / f"audit-{month}.jsonl"
    lines = (
        json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else _event_line(x)
        for x in (header, *_events(repo, first, last), footer)
    )
    sha = _write(path, lines)
    record = repo.record_audit_export(
        month=month,
        period_start=start,
        period_end=end,
        first_seq=first,
        last_seq=last,
        event_count=count,
        head_hash=head.hash if head else None,
        path=str(path),
        file_sha256=sha,
        chain_ok=report.ok,
        exported_by=actor,
    )
    repo.add_audit_event(
        actor,
        "audit.export",
        f"audit:{month}",
        "success" if report.ok else "failure",
        details={"path": str(path), "events": count, "head_seq": last, "sha256": sha},
        reason=None if report.ok else report.summary(),
    )
    return record


def _intact(export: AuditExportRecord) -> bool:
    path = Path(export.path)
    if not (export.chain_ok and path.is_file()):
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == export.file_sha256


def verified_export_covering(repo: CatalogRepository, until: datetime) -> AuditExportRecord | None:
    """The newest intact export when every chained event before ``until`` is in an intact,
    chain-verified export (file present, checksum equal); None otherwise — never prune then."""
    first, last, count = repo.audit_seq_range(None, until)
    exports = [e for e in repo.audit_exports() if e.period_end >= e.period_start and _intact(e)]
    if count == 0:
        return max(exports, key=lambda e: e.period_end, default=None)
    covered_to = (first or 1) - 1
    for e in sorted((e for e in exports if e.first_seq is not None), key=lambda e: e.first_seq):
        if e.first_seq <= covered_to + 1:
            covered_to = max(covered_to, e.last_seq or 0)
    if covered_to < (last or 0):
        return None
    return max(exports, key=lambda e: e.last_seq or 0)


@dataclass(frozen=True)
class PrunePlan:
    """What may go: chained events ``seq <= through_seq``, vouched for by ``exports``."""

    through_seq: int
    rows: int
    exports: tuple[AuditExportRecord, ...]

    @property
    def last(self) -> AuditExportRecord:
        return self.exports[-1]


def prune_plan(repo: CatalogRepository, before: datetime) -> PrunePlan | None:
    """Whole exported months older than ``before``, contiguous from the chain's first event.

    Only intact, chain-verified exports count (:func:`verified_export_covering` first: every
    event before ``before`` must be in one). The plan ends exactly at an export's chain head, so
    ``hisops audit verify`` still starts the shortened chain from that head. None: nothing may
    be pruned."""
    if verified_export_covering(repo, before) is None:
        return None
    first, _last, _count = repo.audit_seq_range(None, None)
    if first is None:
        return None
    exports = sorted(
        (
            e
            for e in repo.audit_exports()
            if _intact(e) and e.first_seq is not None and e.last_seq is not None
        ),
        key=lambda e: e.first_seq or 0,
    )
    through, used = first - 1, []
    for e in exports:
        if e.period_end > before or (e.first_seq or 0) > through + 1:
            break
        if (e.last_seq or 0) > through:
            through = e.last_seq or through
            used.append(e)
    if not used:
        return None
    return PrunePlan(through, _count_through(repo, through), tuple(used))


def _count_through(repo: CatalogRepository, through: int) -> int:
    first, _last, _count = repo.audit_seq_range(None, None)
    return max(0, through - (first or 1) + 1)  # seq is gapless (verify checks it)


def prune_exported(
    repo: CatalogRepository, before: datetime, *, actor: str, dry_run: bool = False
) -> PrunePlan | None:
    """Delete the events :func:`prune_plan` allows and append an ``audit.prune`` event saying
    which seq range went and which export (month, chain head, file) vouches for it."""
    plan = prune_plan(repo, before)
    if plan is None or dry_run:
        return plan
    deleted = repo.prune_audit_events(plan.through_seq, before)
    repo.add_audit_event(
        actor,
        "audit.prune",
        f"audit:..{plan.through_seq}",
        "success",
        details={
            "through_seq": plan.through_seq,
            "rows": deleted,
            "months": [e.month for e in plan.exports],
            "head_hash": plan.last.head_hash,
            "export": plan.last.path,
            "before": before.isoformat(),
        },
    )
    return PrunePlan(plan.through_seq, deleted, plan.exports)
