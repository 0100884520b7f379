"""调优提案 Tuning proposals: suggestions kept and tracked (proposed → approved → applied →
measured, or rejected). performance_review proposes, a person approves or rejects (CLI ``hisops
proposals``, audited), db_maintenance applies approved ones, the next review measures the effect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.catalog.records import ProposalRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.tune.advisor import Suggestion
    from hisops.tune.health import Health
    from hisops.tune.statements import StatementsRead

CREATE_INDEX = "create_index"
DROP_INDEX = "drop_index"
ACTION_DECIDE = "tuning_proposal_decide"


def _quoted(qualified: str) -> str:
    schema, name = qualified.split(".", 1)
    return f'"{schema}"."{name}"'


def drop_definition(index: str) -> str:
    return f"DROP INDEX CONCURRENTLY {_quoted(index)}"


def record_suggestions(
    repo: CatalogRepository,
    database_id: str,
    suggestions: Sequence[Suggestion],
    health: Health | None,
) -> list[dict[str, Any]]:
    """Proposals for proven indexes and for unused or redundant
    indexes; [{id, kind, object, new}]."""
    out = []
    for s in suggestions:
        pid, new = repo.propose(database_id, CREATE_INDEX, s.name, s.definition, s.as_details())
        out.append({"id": pid, "kind": CREATE_INDEX, "object": s.name, "new": new})
    drops: dict[str, dict[str, Any]] = {}
    for i in health.unused if health else []:
        drops[i.index] = {
            "reason": "unused",
            "table": i.table,
            "bytes": i.bytes,
            "writes": i.writes,
            "idx_scan": i.idx_scan,
            "index_definition": i.definition,
        }
    for r in health.redundant if health else []:
        drops.setdefault(
            r.index,
            {
                "reason": "redundant",
                "table": r.table,
                "bytes": r.bytes,
                "covered_by": r.covered_by,
                "columns": r.columns,
            },
        )
    for index, details in drops.items():
        pid, new = repo.propose(database_id, DROP_INDEX, index, drop_definition(index), details)
        out.append({"id": pid, "kind": DROP_INDEX, "object": index, "new": new})
    return out


def decide(
    repo: CatalogRepository, proposal_id: int, approve: bool, by: str, note: str | None = None
) -> ProposalRecord:
    """proposed → approved | rejected, with an audit event (refused ones audited too)."""
    from hisops.catalog.repository import CatalogError

    state = "approved" if approve else "rejected"
    try:
        record = repo.move_proposal(proposal_id, ("proposed",), state, by=by)
    except CatalogError as exc:
        repo.add_audit_event(
            by,
            ACTION_DECIDE,
            f"proposal:{proposal_id}",
            "refused",
            {"wanted": state, "reason": str(exc)},
        )
        raise
    repo.add_audit_event(
        by,
        ACTION_DECIDE,
        f"proposal:{proposal_id}",
        "success",
        {
            "state": state,
            "database_id": record.database_id,
            "object": record.object_name,
            "definition": record.definition,
            "note": note,
        },
    )
    return record


def measure_applied(repo: CatalogRepository, database_id: str, read: StatementsRead) -> list[int]:
    """applied → measured for index proposals whose statement ran since: mean time before/after."""
    now_by_id = {s.queryid: s for s in read.statements}
    measured = []
    for p in repo.proposals(database_id, states=("applied",)):
        s = now_by_id.get(str(p.details.get("queryid")))
        before = p.details.get("mean_ms")
        if p.kind != CREATE_INDEX or s is None or not s.d_calls or not before:
            continue
        repo.move_proposal(
            p.id,
            ("applied",),
            "measured",
            measured={
                "mean_ms_before": before,
                "mean_ms_after": round(s.mean_ms, 3),
                "ratio": round(s.mean_ms / before, 4),
                "calls": s.d_calls,
            },
        )
        measured.append(p.id)
    return measured


def proposal_lines(records: Sequence[ProposalRecord]) -> list[str]:
    """One line per proposal for the CLI: id, state, database, what, why."""
    if not records:
        return ["无提案 no proposals"]
    out = []
    for p in records:
        d = p.details
        why = (
            f"cost {d.get('cost_before')} → {d.get('cost_after')} (-{d.get('drop_pct')} %), "
            f"saves ~{round((d.get('saved_ms_per_day') or 0) / 1000, 1)} s/day"
            if p.kind == CREATE_INDEX
            else f"{d.get('reason')}, {d.get('bytes')} B"
        )
        by = f" by {p.decided_by}" if p.decided_by else ""
        out.append(f"#{p.id} [{p.state}{by}] {p.database_id}: {p.definition} — {why}")
    return out
