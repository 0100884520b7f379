"""hisops.tune.steps: the one call per db_maintenance task; a refused request is audited."""

from __future__ import annotations

import pytest
from hisops.runinfo import RunInfo
from hisops.tune import steps


def test_unknown_database_is_refused_audited_and_nothing_is_planned(catalog, inventory):
    run = RunInfo(dag_id="db_maintenance", run_id="manual__x", triggering_user="operator1")

    def dsn_for(db):  # never reached: the request names no inventory database
        raise AssertionError(f"connected to {db.id}")

    with pytest.raises(steps.RequestRefused, match="拒绝 refused"):
        steps.maintenance_plan(catalog, inventory, {"database_id": "nope"}, dsn_for, run)
    [event] = catalog.audit_events(action="db_maintenance")
    assert (event.actor, event.target, event.result) == ("operator1", "nope", "refused")
    assert (event.dag_id, event.run_id) == ("db_maintenance", "manual__x")
    assert "nope" in event.details["reason"]
    assert catalog.maintenance_for_run("manual__x") == []


def test_a_request_without_database_is_refused_as_unnamed(catalog, inventory):
    run = RunInfo(dag_id="db_maintenance", run_id="manual__y")
    with pytest.raises(steps.RequestRefused):
        steps.maintenance_plan(catalog, inventory, {}, lambda db: "", run)
    [event] = catalog.audit_events(action="db_maintenance")
    assert (event.actor, event.target) == ("db_maintenance (scheduler)", "?")
