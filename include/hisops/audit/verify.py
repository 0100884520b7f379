"""`hisops audit verify`: walk the hash chain and say precisely where it was changed.

Detects an edited row (its hash no longer matches its content), a deleted row (a gap in
``seq`` or a broken link), a row inserted behind the repository's back (no hash after the chain
began, or a link that does not match), and a deleted tail that an export had already vouched for.
Reads in batches: memory stays bounded however long the trail is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hisops.catalog import auditchain

if TYPE_CHECKING:
    from hisops.catalog.records import AuditEventRecord
    from hisops.catalog.repository import CatalogRepository

BATCH = 5000


@dataclass
class ChainReport:
    checked: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK 审计链完整 audit chain intact: {self.checked} events, "
                f"seq {self.first_seq}..{self.head_seq}, head {self.head_hash}"
            )
        return (
            f"FAILED 审计链被改动 audit chain broken: {len(self.problems)} problem(s) "
            f"in {self.checked} events"
        )


def _start(repo: CatalogRepository, first: AuditEventRecord, report: ChainReport) -> str:
    """The hash the first remaining event must link to (genesis, or an export's head)."""
    if first.seq == 1:
        return auditchain.GENESIS
    for export in repo.audit_exports():
        if export.last_seq == first.seq - 1 and export.head_hash:
            return export.head_hash
    report.problems.append(
        f"seq 1..{first.seq - 1}: 链首缺失 start of chain missing "
        "(deleted, and no export vouches for it)"
    )
    return first.prev_hash or ""


def _check(row: AuditEventRecord, seq: int, prev: str, report: ChainReport) -> None:
    where = f"seq {row.seq} (id {row.id}, {row.action})"
    if row.seq != seq:
        report.problems.append(
            f"seq {seq}..{row.seq - 1}: 记录被删除 events deleted (gap before {where})"
        )
    elif row.prev_hash != prev:
        report.problems.append(f"{where}: 链接断开 link to the previous event broken")
    fields = {name: getattr(row, name) for name in auditchain.HASHED_FIELDS}
    if auditchain.event_hash(row.prev_hash or "", fields) != row.hash:
        report.problems.append(f"{where}: 内容被修改 content changed after it was written")


def _check_exports(repo: CatalogRepository, report: ChainReport) -> None:
    for export in repo.audit_exports():
        if export.last_seq is None or (report.first_seq or 0) > export.last_seq:
            continue  # empty month, or pruned after export
        row = repo.audit_event_at_seq(export.last_seq)
        if row is None or row.hash != export.head_hash:
            report.problems.append(
                f"export {export.month}: 链头 seq {export.last_seq} 不符 "
                "the chain head recorded at export is missing or changed"
            )


def verify_chain(repo: CatalogRepository, batch: int = BATCH) -> ChainReport:
    report = ChainReport()
    rows = repo.audit_chain(0, batch)
    if rows:
        report.first_seq = rows[0].seq
        prev, seq = _start(repo, rows[0], report), rows[0].seq or 0
    while rows:
        for row in rows:
            _check(row, seq, prev, report)
            prev, seq = row.hash or "", (row.seq or 0) + 1
            report.checked += 1
            report.head_seq, report.head_hash = row.seq, row.hash
        rows = repo.audit_chain(report.head_seq or 0, batch)
    stray = repo.unchained_audit_events_after_chain_start()
    if stray:
        report.problems.append(
            f"ids {stray[:10]}: 无哈希的记录 rows without a hash (not written by hisops)"
        )
    _check_exports(repo, report)
    return report
