"""hisops.inspect.service.open_run against a real catalog: the run it records, its work orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hisops.inspect import service
from hisops.inventory.loader import load_inventory
from hisops.runinfo import RunInfo

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 0, 5, tzinfo=UTC)  # 08:05 in Asia/Shanghai


@pytest.fixture
def inv():
    return load_inventory(REPO / "inventory" / "hospital.example.yaml")


def test_on_time_run_is_current_and_recorded_for_when_it_was_due(catalog, inv):
    due = NOW - timedelta(hours=1)
    run = RunInfo("daily_inspection", "scheduled__1", "scheduled", due - timedelta(days=1), due)
    plan = service.open_run(catalog, inv, run, ["emr"], now=NOW)
    [order] = plan
    assert order == {
        "system_id": "emr",
        "inspection_run_id": order["inspection_run_id"],
        "historical": False,
        "fold_incidents": True,
    }
    record = catalog.get_inspection_run(order["inspection_run_id"])
    assert (record.dag_id, record.run_id, record.logical_date) == (
        "daily_inspection",
        "scheduled__1",
        due,
    )


def test_backfill_is_historical_for_every_system(catalog, inv):
    day = NOW - timedelta(days=3)
    run = RunInfo("daily_inspection", "backfill__1", "backfill", day - timedelta(days=1), day)
    plan = service.open_run(catalog, inv, run, None, now=NOW)
    assert [o["system_id"] for o in plan] == [s.id for s in inv.systems]
    assert {(o["historical"], o["fold_incidents"]) for o in plan} == {(True, False)}
    assert len({o["inspection_run_id"] for o in plan}) == 1


def test_unknown_system_opens_no_run(catalog, inv):
    run = RunInfo("daily_inspection", "manual__1")
    with pytest.raises(ValueError, match="unknown system id"):
        service.open_run(catalog, inv, run, ["nope"], now=NOW)
    assert catalog.recent_inspection_runs() == []
