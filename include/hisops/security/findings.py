"""One way to build a security finding (check id → 等保 clause in the details)."""

from __future__ import annotations

from typing import Any

from hisops.catalog.records import FindingRecord, Severity, TargetKind
from hisops.security.clauses import CLAUSE


def finding(
    check_id: str,
    kind: TargetKind,
    target: str,
    severity: Severity,
    zh: str,
    en: str,
    *,
    system_id: str | None = None,
    suggestion_zh: str | None = None,
    suggestion_en: str | None = None,
    value: float | None = None,
    **details: Any,
) -> FindingRecord:
    return FindingRecord(
        check_id=check_id,
        target_kind=kind,
        target_id=target,
        severity=severity,
        message_zh=zh,
        message_en=en,
        system_id=system_id,
        value=value,
        suggestion_zh=suggestion_zh,
        suggestion_en=suggestion_en,
        details={"clause": CLAUSE.get(check_id, ""), **details},
    )
