"""The one refusal of the restore package."""

from __future__ import annotations


class RestoreRefused(Exception):
    """The request is not allowed or not valid; production was not touched."""

    def __init__(self, reason_zh: str, reason_en: str) -> None:
        super().__init__(f"拒绝恢复 restore refused: {reason_zh} ({reason_en})")
        self.reason_zh, self.reason_en = reason_zh, reason_en


class Refused(RuntimeError):
    """A refusal already audited: the run fails without retry (the message is the reason)."""
