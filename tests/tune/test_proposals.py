"""Proposal life cycle and the `hisops proposals` CLI (audited decisions) on a real catalog."""

from __future__ import annotations

import pytest
from hisops import cli
from hisops.catalog.repository import CatalogError
from hisops.tune import proposals


def _proposal(catalog) -> int:
    pid, new = catalog.propose(
        "his_outpatient",
        "create_index",
        "hisops_visit_patient_id_idx",
        'CREATE INDEX CONCURRENTLY "x" ON "public"."visit" ("patient_id")',
        {
            "cost_before": 100.0,
            "cost_after": 5.0,
            "drop_pct": 95.0,
            "mean_ms": 20.0,
            "queryid": "42",
            "saved_ms_per_day": 5000,
        },
    )
    assert new
    return pid


def test_same_open_proposal_is_refreshed_not_duplicated(catalog):
    pid = _proposal(catalog)
    again, new = catalog.propose(
        "his_outpatient",
        "create_index",
        "hisops_visit_patient_id_idx",
        'CREATE INDEX CONCURRENTLY "x" ON "public"."visit" ("patient_id")',
        {"v": 2},
    )
    assert (again, new) == (pid, False) and catalog.get_proposal(pid).details == {"v": 2}


def test_cli_lists_approves_and_refuses_a_second_decision(catalog, capsys, monkeypatch):
    url = catalog.engine.url.render_as_string(hide_password=False)
    pid = _proposal(catalog)
    assert cli.main(["proposals", "list", "--url", url]) == 0
    assert f"#{pid} [proposed]" in capsys.readouterr().out
    assert cli.main(["proposals", "approve", str(pid), "--by", "sysadmin", "--url", url]) == 0
    assert catalog.get_proposal(pid).state == "approved"
    assert cli.main(["proposals", "reject", str(pid), "--by", "sysadmin", "--url", url]) == 1
    assert "refused" in capsys.readouterr().err
    events = [
        (e.actor, e.result) for e in catalog.audit_events() if e.action == proposals.ACTION_DECIDE
    ]
    assert events == [("sysadmin", "refused"), ("sysadmin", "success")]


def test_states_move_only_forward(catalog):
    pid = _proposal(catalog)
    proposals.decide(catalog, pid, False, "sysadmin")
    with pytest.raises(CatalogError, match="is 'rejected'"):
        catalog.move_proposal(pid, ("approved",), "applied")
