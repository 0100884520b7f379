"""db_maintenance on a real planted database: plan, gate, one object at a time, faults."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from hisops.inventory.models import MaintenanceWindow
from hisops.roles import OPERATOR, SYSTEM_ADMIN
from hisops.safeguards.approval import ApprovalRequest, check_approval
from hisops.safeguards.window import WindowClock
from hisops.tune import maintenance as m
from hisops.tune import review

from tests.tune.conftest import DB_ID, verified_backup

APPROVED = check_approval(ApprovalRequest("operator1", "sysadmin", frozenset({SYSTEM_ADMIN}), True))


def _window_now(inventory, lock_timeout_ms: int = 2000, retries: int = 3):
    now = datetime.now(ZoneInfo(inventory.timezone))
    window = MaintenanceWindow(
        start=(now - timedelta(hours=1)).strftime("%H:%M"),
        end=(now + timedelta(hours=1)).strftime("%H:%M"),
    )
    tuning = inventory.tuning.model_copy(
        update={"lock_timeout_ms": lock_timeout_ms, "lock_retries": retries}
    )
    return inventory.model_copy(update={"maintenance_window": window, "tuning": tuning})


def _backup(catalog, tmp_path) -> int:
    return verified_backup(catalog, DB_ID, tmp_path / "backup")


def _sql(dsn: str, query: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def _indexes(dsn: str) -> dict[str, bool]:
    return dict(
        _sql(
            dsn,
            "SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c "
            "ON c.oid = x.indexrelid WHERE x.indrelid = 'visit'::regclass",
        )
    )


def _approve_all(catalog, inventory, dsn, run):
    review.review_database(catalog, inventory, DB_ID, dsn, run)
    for p in catalog.proposals(DB_ID, states=("proposed",)):
        catalog.move_proposal(p.id, ("proposed",), "approved", by="sysadmin")


def test_plan_then_apply_records_before_after_and_post_checks(
    catalog, inventory, planted, run, tmp_path
):
    inv = _window_now(inventory)
    _approve_all(catalog, inv, planted, run)
    _backup(catalog, tmp_path)
    plan = m.plan_database(catalog, inv, DB_ID, planted, run)
    kinds = [(s.kind, s.object) for s in plan.steps]
    assert ("create_index", "public.hisops_visit_patient_id_idx") in kinds
    assert ("drop_index", "public.visit_note_idx") in kinds and (
        "vacuum_analyze",
        "public.visit",
    ) in kinds
    assert kinds.index(("drop_index", "public.visit_note_idx")) < kinds.index(
        ("create_index", "public.hisops_visit_patient_id_idx")
    )
    dry = m.apply_plan(catalog, inv, DB_ID, planted, plan, run, approval=APPROVED, dry_run=True)
    assert {s.state for s in dry.steps} == {
        "planned"
    } and "hisops_visit_patient_id_idx" not in _indexes(planted)

    result = m.apply_plan(catalog, inv, DB_ID, planted, plan, run, approval=APPROVED, dry_run=False)
    assert {s.state for s in result.steps} == {"applied"}, [
        (s.object, s.reason) for s in result.steps
    ]
    idx = _indexes(planted)
    assert idx["hisops_visit_patient_id_idx"] is True and "visit_note_idx" not in idx
    assert result.post_checks["ok"] and result.post_checks["amcheck_checked"]
    assert "checks" in result.post_checks["inspection"]
    ops = {
        o.target_object: o for o in catalog.maintenance_for_run(run.run_id) if o.state == "applied"
    }
    created = ops["public.hisops_visit_patient_id_idx"]
    assert (
        created.before["exists"] is False
        and created.after["exists"] is True
        and created.after["bytes"] > 0
    )
    assert created.before["queries"][0]["plan_cost"] > created.after["queries"][0]["plan_cost"]
    vac = ops["public.visit"]
    assert vac.before["dead"] > 0 and vac.after["dead"] == 0
    states = {
        p.kind: p.state
        for p in catalog.proposals(DB_ID)
        if p.object_name.endswith("patient_id_idx")
    }
    assert states == {"create_index": "applied"}


def test_no_fresh_backup_applies_nothing_and_says_why(catalog, inventory, planted, run):
    inv = _window_now(inventory)
    _approve_all(catalog, inv, planted, run)
    plan = m.plan_database(catalog, inv, DB_ID, planted, run)
    with pytest.raises(m.MaintenanceRefused, match="no verified backup"):
        m.apply_plan(catalog, inv, DB_ID, planted, plan, run, approval=APPROVED, dry_run=False)
    assert "hisops_visit_patient_id_idx" not in _indexes(planted)
    assert catalog.maintenance_for_run(run.run_id) == []
    [refused] = [e for e in catalog.audit_events() if e.result == "refused"]
    assert refused.action == "db_maintenance" and not refused.details["gate"][1]["ok"]


@pytest.mark.parametrize(
    ("approver", "roles"), [("operator1", {SYSTEM_ADMIN}), ("op2", {OPERATOR})]
)
def test_refused_approver_applies_nothing(
    catalog, inventory, planted, run, tmp_path, approver, roles
):
    inv = _window_now(inventory)
    _approve_all(catalog, inv, planted, run)
    _backup(catalog, tmp_path)
    plan = m.plan_database(catalog, inv, DB_ID, planted, run)
    verdict = check_approval(ApprovalRequest(run.triggering_user, approver, frozenset(roles), True))
    with pytest.raises(m.MaintenanceRefused):
        m.apply_plan(catalog, inv, DB_ID, planted, plan, run, approval=verdict, dry_run=False)
    assert "hisops_visit_patient_id_idx" not in _indexes(planted)


class _ClosesAfter(WindowClock):
    """A window that closes after ``n`` steps were allowed to start."""

    def __init__(self, n: int) -> None:
        super().__init__(datetime.now(UTC) + timedelta(hours=1))
        object.__setattr__(self, "left", n)

    def may_start(self, now=None) -> bool:
        object.__setattr__(self, "left", self.left - 1)
        return self.left >= 0


def test_window_closing_mid_plan_skips_and_records_the_rest(
    catalog, inventory, planted, run, tmp_path
):
    inv = _window_now(inventory)
    _approve_all(catalog, inv, planted, run)
    _backup(catalog, tmp_path)
    plan = m.plan_database(catalog, inv, DB_ID, planted, run)
    assert len(plan.steps) >= 3
    result = m.apply_plan(
        catalog,
        inv,
        DB_ID,
        planted,
        plan,
        run,
        approval=APPROVED,
        dry_run=False,
        clock=_ClosesAfter(1),
    )
    assert [s.state for s in result.steps] == ["applied"] + ["skipped"] * (len(plan.steps) - 1)
    skipped = [o for o in catalog.maintenance_for_run(run.run_id) if o.state == "skipped"]
    assert len(skipped) == len(plan.steps) - 1 and all("window closed" in o.error for o in skipped)


def test_lock_held_by_a_long_transaction_gives_up_without_blocking_readers(
    catalog, inventory, planted, run, tmp_path
):
    lock_ms = 300
    inv = _window_now(inventory, lock_timeout_ms=lock_ms, retries=2)
    _backup(catalog, tmp_path)
    plan = m.plan_from_dict(
        {
            "database_id": DB_ID,
            "steps": [
                {
                    "kind": "drop_index",
                    "object": "public.visit_note_idx",
                    "table": "public.visit",
                    "sql": 'DROP INDEX CONCURRENTLY "public"."visit_note_idx"',
                    "reason_zh": "测试",
                    "reason_en": "test",
                }
            ],
        }
    )
    blocker = psycopg2.connect(planted)
    blocker.cursor().execute(
        "BEGIN; SELECT count(*) FROM visit WHERE dept_id = 1"
    )  # idle in transaction
    done, reads, errors = threading.Event(), [], []

    def reader() -> None:
        conn = psycopg2.connect(planted, options=f"-c statement_timeout={lock_ms + 1000}")
        conn.autocommit = True
        while not done.is_set():
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM visit WHERE dept_id = %s", (len(reads) % 40,))
                    reads.append(cur.fetchone()[0])
            except psycopg2.Error as exc:  # statement_timeout: the reader was blocked
                errors.append(str(exc))
            time.sleep(0.02)
        conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = m.apply_plan(
            catalog,
            inv,
            DB_ID,
            planted,
            plan,
            run,
            approval=APPROVED,
            dry_run=False,
            sleep=lambda s: time.sleep(0.2),
        )
    finally:
        done.set()
        thread.join()
        blocker.rollback()
        blocker.close()
    [step] = result.steps
    assert (step.state, step.attempts) == ("skipped", 3), step.reason
    assert "lock not available" in step.reason
    assert errors == [] and len(reads) > 0  # readers never waited beyond lock_timeout + 1 s
    assert "visit_note_idx" in _indexes(
        planted
    )  # not dropped; a plain DROP INDEX would have queued
    [op] = catalog.maintenance_for_run(run.run_id)
    assert op.state == "skipped" and op.after["attempts"] == 3


def test_interrupted_reindex_leaves_a_leftover_the_next_run_drops(
    catalog, inventory, planted, run, tmp_path
):
    inv = _window_now(inventory)
    _backup(catalog, tmp_path)
    blocker = psycopg2.connect(planted)
    blocker.cursor().execute("BEGIN; SELECT count(*) FROM visit WHERE dept_id = 1")
    victim = psycopg2.connect(planted, application_name="victim")
    victim.autocommit = True
    failure: list[str] = []

    def reindex() -> None:
        try:
            victim.cursor().execute("REINDEX INDEX CONCURRENTLY visit_dept_idx")
        except psycopg2.Error as exc:
            failure.append(exc.pgcode)

    thread = threading.Thread(target=reindex)
    thread.start()
    for _ in range(200):  # wait until it waits for the old transaction, then cancel it
        if _sql(
            planted,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'victim' "
            "AND wait_event_type = 'Lock'",
        ):
            break
        time.sleep(0.05)
    _sql(
        planted,
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
    )
    thread.join()
    blocker.rollback()
    blocker.close()
    victim.close()
    assert failure == ["57014"]
    leftovers = [n for n, valid in _indexes(planted).items() if not valid]
    assert leftovers and all("_cc" in n for n in leftovers)
    plan = m.plan_database(catalog, inv, DB_ID, planted, run, kinds=["drop_invalid"])
    assert [s.object for s in plan.steps] == [f"public.{n}" for n in sorted(leftovers)]
    result = m.apply_plan(catalog, inv, DB_ID, planted, plan, run, approval=APPROVED, dry_run=False)
    assert {s.state for s in result.steps} == {"applied"}
    assert all(_indexes(planted).values()) and result.post_checks["invalid_indexes"] == []


def test_database_not_in_inventory_is_refused(catalog, inventory, planted, run):
    with pytest.raises(KeyError):
        m.plan_database(catalog, inventory, "not_there", planted, run)


def test_unsafe_statements_are_never_executed():
    from hisops.tune.plan import UnsafeStatement, assert_safe

    for sql in (
        'DELETE FROM "public"."visit"',
        'TRUNCATE "public"."visit"',
        'REINDEX INDEX CONCURRENTLY "public"."x"; DROP TABLE "public"."visit"',
    ):
        with pytest.raises(UnsafeStatement):
            assert_safe(sql)
