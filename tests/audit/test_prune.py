"""Pruning old audit events: only behind a verified, hash-chained export (retention_cleanup).

Real catalog (the append-only trigger, the chain, export files on disk) and the real
``prune_records`` of the cleanup; old events are appended to the chain with a past time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hisops.audit.export import export_month
from hisops.audit.verify import verify_chain
from hisops.catalog import auditchain
from hisops.catalog import tables as T
from hisops.catalog.repository import _chain_tip
from hisops.cleanup import records as rec
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from tests.cleanup.conftest import inventory_with

NOW = datetime.now(UTC)
TZ = "Asia/Shanghai"


def _append(catalog, at: datetime, action: str = "dag.trigger") -> None:
    """One chained event at a past time (what the repository writes, with ``at`` given)."""
    with catalog.engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": auditchain.CHAIN_LOCK_KEY})
        seq, prev = _chain_tip(conn)
        row = {
            "seq": seq + 1,
            "at": at,
            "actor": "ops",
            "source": "127.0.0.1",
            "action": action,
            "target": "dag:db_backup",
            "result": "success",
            "reason": None,
            "details": {},
            "dag_id": "db_backup",
            "run_id": None,
        }
        digest = auditchain.event_hash(prev, row)
        conn.execute(insert(T.audit_event).values(**row, prev_hash=prev, hash=digest))


def _audit_step(catalog, tmp_path, dry_run: bool = False):
    inv = inventory_with(
        tmp_path, "- {id: h1, local: true}\n", extra="record_retention: {audit_events_days: 180}"
    )
    steps = rec.prune_records(catalog, inv, dry_run=dry_run, log=lambda _: None)
    return next(s for s in steps if s.item == "audit_event")


@pytest.fixture
def old_trail(catalog):
    old = [NOW - timedelta(days=d) for d in (400, 390, 300)]
    for at in old:
        _append(catalog, at)
    _append(catalog, NOW - timedelta(days=10))  # young: stays whatever happens
    months = sorted({at.astimezone(ZoneInfo(TZ)).strftime("%Y-%m") for at in old})
    return months


def test_without_an_export_nothing_is_pruned_and_the_step_says_why(catalog, old_trail, tmp_path):
    step = _audit_step(catalog, tmp_path)
    assert step.state == "skipped" and step.reason == rec.NO_EXPORT
    assert step.details["older_than_retention"] == 3 and step.rows == 0
    assert [e.seq for e in catalog.audit_chain()] == [1, 2, 3, 4]
    with pytest.raises(DBAPIError, match="append-only"):  # the table refuses it too
        catalog.prune_audit_events(3, NOW - timedelta(days=180))


def test_with_verified_exports_old_months_are_pruned_and_recorded(catalog, old_trail, tmp_path):
    exports = [
        export_month(catalog, m, tmp_path / "audit", actor="审计员", tz=TZ) for m in old_trail
    ]
    assert all(e.chain_ok for e in exports)
    # a tampered export file vouches for nothing
    path = tmp_path / "audit" / f"audit-{old_trail[0]}.jsonl"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"ops"', b'"opx"'))
    assert _audit_step(catalog, tmp_path).reason == rec.NO_EXPORT
    path.write_bytes(original)

    preview = _audit_step(catalog, tmp_path, dry_run=True)
    assert (preview.state, preview.rows) == ("dry_run", 3)
    assert len(catalog.audit_chain()) == 4 + len(exports)  # nothing gone in a preview

    step = _audit_step(catalog, tmp_path)
    assert (step.state, step.rows, step.details["through_seq"]) == ("ok", 3, 3)
    assert step.details["months"] == old_trail
    remaining = catalog.audit_chain()
    assert remaining[0].seq == 4 and remaining[0].at < NOW - timedelta(days=9)
    (pruned,) = catalog.audit_events(action="audit.prune")
    assert pruned.details["through_seq"] == 3 and pruned.details["rows"] == 3
    assert pruned.details["head_hash"] == exports[-1].head_hash
    report = verify_chain(catalog)
    assert report.ok, report.problems  # the shortened chain starts from the export's head
    young = pytest.raises(DBAPIError, match="append-only")  # younger than the floor: refused
    with young, catalog.engine.begin() as conn:
        conn.execute(text("SET LOCAL hisops.audit_prune = 'on'"))
        conn.execute(text("DELETE FROM hisops.audit_event WHERE seq = 4"))
    assert _audit_step(catalog, tmp_path).rows == 0  # nothing more to prune
