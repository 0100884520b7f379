"""Baselines in the catalog: what roles, grants and sudoers looked like when someone accepted them.

First sight of a target's item: the current state becomes the baseline (accepted by the audit
run, recorded in the audit trail). Later runs compare: a difference is a *drift* finding that
says what was added, removed or changed and since when it has been seen (``drift_since`` survives
restarts, it is in the catalog). ``accept_drift`` makes the current state the baseline — an
audited action of a named person (``hisops security accept-drift``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from hisops.catalog.repository import CatalogRepository


@dataclass(frozen=True)
class Drift:
    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, dict[str, Any]]
    since: datetime | None = None
    accepted_by: str | None = None
    accepted_at: datetime | None = None

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}

    def text(self) -> str:
        parts = [f"+{k}" for k in sorted(self.added)] + [f"-{k}" for k in sorted(self.removed)]
        parts += [f"~{k}: {v['was']} → {v['now']}" for k, v in sorted(self.changed.items())]
        return "; ".join(parts[:20]) + (" …" if len(parts) > 20 else "")


def diff(baseline: dict[str, Any], current: dict[str, Any]) -> Drift:
    return Drift(
        added={k: current[k] for k in current.keys() - baseline.keys()},
        removed={k: baseline[k] for k in baseline.keys() - current.keys()},
        changed={
            k: {"was": baseline[k], "now": current[k]}
            for k in current.keys() & baseline.keys()
            if baseline[k] != current[k]
        },
    )


def compare(
    repo: CatalogRepository, target_id: str, item: str, current: dict[str, Any], actor: str
) -> Drift | None:
    """Drift against the stored baseline; None on first sight (then it is stored)."""
    stored = repo.security_baseline(target_id, item)
    if stored is None:
        repo.accept_security_baseline(target_id, item, current, actor)
        repo.add_audit_event(
            actor,
            "security.baseline.accept",
            f"{target_id}:{item}",
            "success",
            details={"first": True, "entries": len(current)},
            reason="首次建立基线 first baseline",
        )
        return None
    drift = diff(stored.baseline, current)
    since = repo.note_security_drift(target_id, item, drift.as_dict() if drift.any else None)
    return Drift(
        drift.added, drift.removed, drift.changed, since, stored.accepted_by, stored.accepted_at
    )


def accept_drift(repo: CatalogRepository, target_id: str, item: str, by: str, reason: str) -> bool:
    """Make the last seen state the baseline; False when there was no drift to accept."""
    stored = repo.security_baseline(target_id, item)
    if stored is None or stored.drift is None:
        repo.add_audit_event(
            by,
            "security.baseline.accept",
            f"{target_id}:{item}",
            "failure",
            reason="没有待接受的变化 no drift to accept",
        )
        return False
    current = {
        **{k: v for k, v in stored.baseline.items() if k not in stored.drift["removed"]},
        **stored.drift["added"],
        **{k: v["now"] for k, v in stored.drift["changed"].items()},
    }
    repo.accept_security_baseline(target_id, item, current, by)
    repo.add_audit_event(
        by,
        "security.baseline.accept",
        f"{target_id}:{item}",
        "success",
        details={"drift": stored.drift, "since": str(stored.drift_since)},
        reason=reason,
    )
    return True
