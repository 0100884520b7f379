"""How bad a finding is: the one ranking of severities every capability uses.

A check that could not run (``check_error``) is worth an incident, but a real warning about the
target outranks it, and ``critical`` outranks everything. Import-free on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

Severity = Literal["ok", "warn", "critical", "check_error"]

SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "critical", "check_error")
RANK: Mapping[str, int] = {"ok": 0, "check_error": 1, "warn": 2, "critical": 3}


def rank(severity: str) -> int:
    """The rank of ``severity``; an unknown name is an error naming the known ones."""
    try:
        return RANK[severity]
    except KeyError:
        raise ValueError(
            f"unknown severity {severity!r} (known: {', '.join(SEVERITIES)})"
        ) from None


def worse(a: Severity, b: Severity) -> Severity:
    """The more severe of two severities (``a`` on a tie)."""
    return b if rank(b) > rank(a) else a


def worst(severities: Iterable[str], default: Severity = "ok") -> Severity:
    """The most severe of ``severities`` (``default`` when there are none)."""
    out: Severity = default
    for s in severities:
        out = worse(out, s)  # type: ignore[arg-type]
    return out


def at_least(severity: str, floor: str) -> bool:
    """True when ``severity`` is as bad as ``floor`` or worse (e.g. a channel's min_severity)."""
    return rank(severity) >= rank(floor)
