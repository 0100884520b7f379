"""hisops.inspect.run against a real catalog, with a scripted stand-in for the check engine.

The engine itself is tested with real PostgreSQL/sshd elsewhere (and end to end in
tests/dags/test_daily_inspection.py); here the engine's answers are scripted so the orchestration
rules can be driven exactly: crashes, unusable connections, incident folding, stale incidents,
backfills and late runs, log offsets, bounded concurrency.
"""

from __future__ import annotations

import threading
import time
import types
from datetime import UTC, datetime
from typing import Any

import pytest
from hisops.catalog.migrate import upgrade
from hisops.catalog.records import FindingRecord
from hisops.catalog.repository import CatalogRepository
from hisops.inspect import run as R
from hisops.inventory.models import Inventory

INVENTORY = {
    "version": 1,
    "hospital": "测试医院",
    "maintenance_window": {"start": "01:00", "end": "05:00"},
    "backup_storage": {"path": "/tmp/b"},
    "reports": {"path": "/tmp/r"},
    "systems": [
        {
            "id": "s1",
            "name": "门诊系统",
            "name_en": "Outpatient",
            "databases": [{"id": f"d{i}", "conn_id": f"c{i}"} for i in range(3)],
            "hosts": [
                {"id": "h1", "ssh_conn_id": "ssh1", "logs": [{"path": "/var/log/app/*.log"}]}
            ],
            "endpoints": [{"id": "web", "url": "http://127.0.0.1:9/"}],
        }
    ],
}


class FakeEngine:
    """Scripted engine: ``state[target] `` is ok | warn | critical | down | crash."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.offsets_seen: list[dict] = []
        self.facts_seen: dict[str, dict] = {}
        self.delay = 0.0
        self.active = self.peak = 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1

    def _findings(self, kind: str, system: Any, target_id: str, check: str) -> list[FindingRecord]:
        self._enter()
        state = self.state.get(target_id, "ok")
        if state == "crash":
            raise RuntimeError("bug in a check module")
        if state == "down":
            return [
                FindingRecord(
                    f"{kind}.reachable",
                    kind,
                    target_id,
                    "critical",
                    "不可达",
                    "unreachable",
                    system_id=system.id,
                )
            ]
        reach = FindingRecord(
            f"{kind}.reachable", kind, target_id, "ok", "可达", "reachable", system_id=system.id
        )
        sev = state if state in ("warn", "critical") else "ok"
        metric = {"metrics": {"connections_pct": 50.0 if sev == "ok" else 90.0}}
        return [
            reach,
            FindingRecord(
                check,
                kind,
                target_id,
                sev,
                f"{check} {sev}",
                f"{check} {sev}",
                system_id=system.id,
                value=1.0,
                details=metric,
            ),
        ]

    def inspect_database(
        self, system, database, dsn, thresholds, *, catalog_facts=None, now=None, tz=None
    ):
        assert dsn.startswith("dsn-for-")
        self.facts_seen[database.id] = dict(catalog_facts or {})
        return self._findings("database", system, database.id, "db.connections")

    def inspect_host(
        self,
        system,
        host,
        runner,
        thresholds,
        *,
        log_offsets=None,
        fs_previous=None,
        base_dir=None,
        tz=None,
    ):
        self.fs_seen = fs_previous
        remembered = log_offsets("") if callable(log_offsets) else log_offsets
        self.offsets_seen.append(
            {p: remembered.get(p) for p in ("/var/log/app/a.log", "/var/log/app/b.log")}
        )
        findings = self._findings("host", system, host.id, "host.load")
        return findings, {"/var/log/app/a.log": (42, 1000 * (len(self.offsets_seen)))}

    def inspect_endpoint(self, system, endpoint, thresholds, tz=None):
        return self._findings("endpoint", system, endpoint.id, "http.status")

    def metrics_from(self, findings):
        return [
            (f.target_id, m, v) for f in findings for m, v in f.details.get("metrics", {}).items()
        ]


class Runner:
    closed = 0

    def close(self) -> None:
        Runner.closed += 1


@pytest.fixture
def repo(pg, new_db):
    name = new_db("runcat")
    upgrade(pg.sqlalchemy_url(name))
    repository = CatalogRepository.from_url(pg.sqlalchemy_url(name))
    yield repository
    repository.dispose()


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    import hisops.inspect as package

    fake = FakeEngine()
    module = types.SimpleNamespace(
        **{
            n: getattr(fake, n)
            for n in ("inspect_database", "inspect_host", "inspect_endpoint", "metrics_from")
        }
    )
    monkeypatch.setattr(package, "engine", module, raising=False)
    return fake


INV = Inventory.model_validate(INVENTORY)
SYSTEM = INV.find_system("s1")


def access(broken: set[str] = frozenset()) -> R.Access:
    def dsn_for(db):
        if db.id in broken:
            raise LookupError(f"The conn_id `{db.conn_id}` isn't defined")
        return f"dsn-for-{db.id}"

    return R.Access(dsn_for=dsn_for, runner_for=lambda host: Runner())


def inspect(
    repo,
    *,
    historical: bool = False,
    fold: bool = True,
    broken: set[str] = frozenset(),
    workers: int = 8,
    lines=None,
):
    run_pk = repo.start_inspection_run("daily_inspection", f"r{time.monotonic_ns()}")
    ctx = R.RunContext(run_pk, historical=historical, fold_incidents=fold)
    outcome = R.inspect_system(
        INV,
        SYSTEM,
        repo,
        ctx,
        access(broken),
        max_workers=workers,
        progress=(lines.append if lines is not None else lambda _: None),
    )
    return outcome, {(f.target_id, f.check_id): f for f in repo.findings_for(run_pk)}


def incident(repo, check: str, target: str):
    found = [i for i in repo.incidents() if (i.check_id, i.target_id) == (check, target)]
    assert len(found) == 1
    return found[0]


def test_unreachable_crash_and_bad_connection_are_findings_not_failures(repo, engine):
    engine.state = {"d0": "down", "d1": "crash"}
    lines: list[str] = []
    outcome, by = inspect(repo, broken={"d2"}, lines=lines)
    assert by[("d0", "database.reachable")].severity == "critical"
    crash = by[("d1", "database.inspection")]
    assert crash.severity == "check_error" and "bug in a check module" in crash.message_en
    conn = by[("d2", "database.reachable")]
    assert (
        conn.severity == "critical"
        and "connection not usable" in conn.message_en
        and "c2" in conn.message_en
    )
    assert by[("h1", "host.load")].severity == "ok" and by[("web", "http.status")].severity == "ok"
    assert outcome.targets == 5 and outcome.counts == {"critical": 2, "check_error": 1, "ok": 4}
    assert sorted(c["action"] for c in outcome.changes) == ["opened"] * 3
    assert (
        len(lines) == 5
        and lines[-1].startswith("[5/5] ")
        and all("findings" in line for line in lines)
    )
    assert Runner.closed >= 1


def test_incident_lifecycle_one_incident_per_problem(repo, engine):
    engine.state = {"d0": "warn"}
    first, _ = inspect(repo)
    assert [(c["action"], c["target_id"]) for c in first.changes] == [("opened", "d0")]
    assert R.notifiable(first.changes) == first.changes

    again, _ = inspect(repo)
    assert again.changes == [] and again.updated == 1
    assert incident(repo, "db.connections", "d0").occurrences == 2

    engine.state = {"d0": "critical"}
    worse, _ = inspect(repo)
    assert [c["action"] for c in worse.changes] == ["escalated"]
    assert worse.changes[0]["previous_severity"] == "warn"

    engine.state = {}
    fixed, _ = inspect(repo)
    assert [c["action"] for c in fixed.changes] == ["resolved"] and R.notifiable(
        fixed.changes
    ) == []
    assert repo.open_incidents() == []


def test_stale_incident_of_a_crashed_check_closes_once_the_target_inspects_cleanly(repo, engine):
    engine.state = {"d1": "crash", "d0": "down"}
    inspect(repo)
    assert incident(repo, "database.inspection", "d1").state == "open"
    engine.state = {"d0": "down"}  # d1 fine now; d0 still down
    outcome, _ = inspect(repo)
    assert incident(repo, "database.inspection", "d1").state == "resolved"
    assert [c["action"] for c in outcome.changes] == ["resolved"]
    assert incident(repo, "database.reachable", "d0").state == "open"


def test_unreachable_target_keeps_its_other_incidents_open(repo, engine):
    engine.state = {"d0": "warn"}
    inspect(repo)
    engine.state = {"d0": "down"}  # connections not measured today: not a reason to close
    inspect(repo)
    assert incident(repo, "db.connections", "d0").state == "open"


def test_backfill_stores_present_state_and_leaves_incidents(repo, engine):
    engine.state = {"d0": "warn"}
    inspect(repo)
    engine.state = {}
    outcome, by = inspect(repo, historical=True, fold=False)
    assert outcome.changes == [] and incident(repo, "db.connections", "d0").state == "open"
    assert all(f.details.get("present_state") for f in by.values())


def test_late_run_is_labelled_but_still_folds_incidents(repo, engine):
    engine.state = {"d0": "warn"}
    outcome, by = inspect(repo, historical=True, fold=True)
    assert [c["action"] for c in outcome.changes] == ["opened"]
    assert by[("d0", "db.connections")].details["present_state"] is True


def test_metrics_facts_and_log_offsets_round_trip(repo, engine):
    inspect(repo)
    assert engine.facts_seen["d0"] == {
        "last_verified_backup_at": None,
        "previous_size_bytes": None,
        "previous_size_at": None,
        "previous_started_at": None,
    }
    assert engine.offsets_seen[0] == {"/var/log/app/a.log": None, "/var/log/app/b.log": None}
    assert [s.value for s in repo.metric_series("d0", "connections_pct")] == [50.0]
    assert engine.fs_seen == {}
    repo.add_metric_samples(
        [
            R.MetricSample("d0", R.SIZE_METRIC, 123.0, datetime.now(UTC)),
            R.MetricSample("h1", "fs_used_bytes:/", 9e9, datetime.now(UTC)),
        ]
    )
    inspect(repo)
    assert engine.offsets_seen[1] == {"/var/log/app/a.log": (42, 1000), "/var/log/app/b.log": None}
    assert engine.facts_seen["d0"]["previous_size_bytes"] == 123.0
    assert engine.fs_seen["/"][1] == 9e9
    assert repo.get_log_offset("h1", "/var/log/app/a.log").offset == 2000


def test_concurrency_is_bounded(repo, engine):
    engine.delay = 0.2
    start = time.monotonic()
    inspect(repo, workers=2)
    assert engine.peak == 2
    assert time.monotonic() - start >= 0.2 * 5 / 2


def test_incidents_of_targets_removed_from_the_inventory_close_saying_why(repo, engine):
    """d_gone (this system) and a whole system that left the inventory: closed, with the reason;
    incidents of other capabilities (no inspection check id) are not the inspection's to close."""
    run_pk = repo.start_inspection_run("daily_inspection", "before-removal")
    old = [
        FindingRecord(
            "db.connections",
            "database",
            "d_gone",
            "warn",
            "连接数高",
            "connections high",
            system_id="s1",
        ),
        FindingRecord(
            "db.locks", "database", "x1", "critical", "锁等待", "lock waits", system_id="s_gone"
        ),
        FindingRecord(
            "backup.verify",
            "database",
            "d_gone",
            "critical",
            "演练失败",
            "drill failed",
            system_id="s1",
        ),
    ]
    for f, fid in zip(old, repo.add_findings(run_pk, old), strict=True):
        repo.upsert_incident_for(f, fid)
    outcome, _ = inspect(repo)
    closed = {(c["target_id"], c["check_id"]) for c in outcome.changes if c["action"] == "resolved"}
    assert closed == {("d_gone", "db.connections"), ("x1", "db.locks")}
    for target, check in closed:
        assert "removed from the inventory" in incident(repo, check, target).resolution_note
    assert incident(repo, "backup.verify", "d_gone").state == "open"
