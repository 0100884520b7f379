"""Which inventory ids a run works on: all of them, or the subset a trigger form names.

One helper for every DAG's id Params (databases, hosts, servers). Import-free on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence


def select_ids(known: Sequence[str], wanted: Sequence[str] | None, what: str) -> list[str]:
    """All ``known`` ids, or the ``wanted`` subset in inventory order (unknown ids are an error
    naming them and the known ones; ``what`` names the kind, Chinese first)."""
    if not wanted:
        return list(known)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(
            f"清单中没有这些{what} not in the inventory: {', '.join(unknown)} "
            f"(known: {', '.join(known) or 'none'})"
        )
    return [k for k in known if k in wanted]
