"""The one result shape every safeguard returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """``ok`` or not, why (中文 / English), and what was looked at (for the audit event)."""

    safeguard: str
    ok: bool
    reason_zh: str
    reason_en: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return f"{self.reason_zh} ({self.reason_en})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "safeguard": self.safeguard,
            "ok": self.ok,
            "reason_zh": self.reason_zh,
            "reason_en": self.reason_en,
            "details": dict(self.details),
        }
