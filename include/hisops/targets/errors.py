"""Errors shared by every target kind."""


class TargetUnreachable(RuntimeError):
    """The target could not be reached (network, authentication, server down).

    Callers turn this into a critical finding for that target; it never crashes a run.
    """

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: unreachable 无法连接 — {reason}")
        self.target = target
        self.reason = reason
