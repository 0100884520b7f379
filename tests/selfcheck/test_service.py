"""hisops.selfcheck.service without Airflow: results for unusable connections, the recorded run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hisops.runinfo import RunInfo
from hisops.selfcheck import service

SYSTEM = SimpleNamespace(id="s1")


def broken(target):
    raise LookupError(f"The conn_id `{target.id}_conn` isn't defined")


def test_an_unusable_connection_is_an_unreachable_result_not_a_crash():
    db = service.probe_db(SYSTEM, SimpleNamespace(id="d1"), broken)
    host = service.probe_one_host(SYSTEM, SimpleNamespace(id="h1"), broken)
    for result, kind in ((db, "database"), (host, "host")):
        assert (result.target_kind, result.system_id, result.reachable) == (kind, "s1", False)
        assert result.detail.startswith("connection not usable 连接配置不可用: LookupError")


def test_a_real_database_is_reachable(pg, new_db):
    name = new_db("probe")
    result = service.probe_db(SYSTEM, SimpleNamespace(id="d1"), lambda db: pg.dsn(name))
    assert result.reachable and "PostgreSQL" in result.detail and name in result.detail


def test_record_writes_the_row_and_the_audit_event_and_the_verdict_names_the_unreachable(catalog):
    run = RunInfo("hisops_selfcheck", "manual__s", triggering_user="operator1")
    ok = {"target_kind": "database", "target_id": "d1", "system_id": "s1", "reachable": True}
    bad = {"target_kind": "host", "target_id": "h1", "system_id": "s1", "reachable": False}
    summary = service.record(
        catalog,
        [{**ok, "detail": "x", "seconds": 0.1}],
        [{**bad, "detail": "y", "seconds": 1}],
        run,
    )
    assert (summary["ok"], summary["unreachable"]) == (False, ["h1"])
    assert summary["summary"] == "可达 1/2 reachable; 不可达 unreachable: h1"
    [event] = catalog.audit_events(action="selfcheck")
    assert (event.actor, event.result, event.run_id) == ("hisops_selfcheck", "failure", "manual__s")
    assert catalog.latest_selfcheck().ok is False
    with pytest.raises(RuntimeError, match="自检未通过 self-check failed — 可达 1/2"):
        service.verdict(summary)
    assert service.verdict({"ok": True, "summary": "可达 2/2 reachable"}) == "可达 2/2 reachable"
