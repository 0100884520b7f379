"""The one result shape of every change step (stored in
``change_step.details``, shown on the page)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STEPS_ZH = {
    "request": "申请",
    "assessment": "兼容性评估",
    "backup": "变更前备份",
    "approval": "审批",
    "apply": "实施",
    "restart": "计划重启",
    "verify": "验证",
    "revert": "回退",
    "verify_after_revert": "回退后验证",
    "cancel": "取消",
    "outcome": "结果",
}


@dataclass(frozen=True)
class StepResult:
    step: str
    ok: bool
    summary_zh: str
    summary_en: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"{self.summary_zh} ({self.summary_en})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def passed(step: str, zh: str, en: str, **details: Any) -> StepResult:
    return StepResult(step, True, zh, en, details)


def failed(step: str, zh: str, en: str, **details: Any) -> StepResult:
    return StepResult(step, False, zh, en, details)


def first_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "unknown error")[:limit]
