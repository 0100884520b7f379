"""backup_verification end to end with dag.test(): real Airflow, PostgreSQL, GX, SMTP."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hisops.verify import scratch

from tests.dags.backup_kit import flip_a_byte
from tests.dags.conftest import REPO, load_dag, logical_inventory
from tests.verify.conftest import scratch_databases


@pytest.fixture
def dag_env(logical_dag_env):
    return logical_dag_env  # tests/dags/conftest.py


def test_verification_dag_verifies_and_records_evidence(dag_env, make_backup, pg):
    outcome = make_backup(dag_env.db)
    run = load_dag("backup_verification").test(run_conf={"backup_id": outcome.backup_id})

    assert run.state == "success"
    repo = dag_env.catalog
    assert repo.get_backup(outcome.backup_id).state == "verified"
    assert repo.latest_verified_backup("d1").id == outcome.backup_id
    (verification,) = repo.verifications_for(outcome.backup_id)
    assert verification.ok and verification.restore_seconds > 0 and verification.error is None
    evidence = Path(verification.evidence_path)
    assert evidence.is_file() and evidence.is_relative_to(
        dag_env.tmp / "reports" / "verification" / "d1"
    )
    assert oct(evidence.stat().st_mode & 0o777) == "0o600"
    assert "测试医院" in evidence.read_text()  # the inventory's hospital, on the evidence page
    assert verification.details["checks_failed"] == 0 and verification.details["checks_total"] > 40
    event = next(e for e in repo.audit_events() if e.action == "backup_verification")
    assert (event.result, event.target, event.actor) == ("success", "d1", "dag_test")
    assert not [n for n in scratch_databases(pg) if "_d1_" in n]
    assert dag_env.mailbox.raw == []


def test_flipped_byte_fails_the_run_marks_the_backup_and_alerts(dag_env, make_backup):
    good = make_backup(dag_env.db)
    assert (
        load_dag("backup_verification").test(run_conf={"backup_id": good.backup_id}).state
        == "success"
    )
    bad = make_backup(dag_env.db)
    name = flip_a_byte(bad.path)

    run = load_dag("backup_verification").test(run_conf={"backup_id": bad.backup_id})

    assert run.state == "failed"
    repo = dag_env.catalog
    record = repo.get_backup(bad.backup_id)
    assert record.state == "failed" and name in record.error
    assert repo.latest_verified_backup("d1").id == good.backup_id  # never counted as last verified
    (verification,) = repo.verifications_for(bad.backup_id)
    assert (
        not verification.ok
        and name in verification.error
        and Path(verification.evidence_path).is_file()
    )
    (incident,) = repo.open_incidents()
    assert (incident.check_id, incident.target_id, incident.severity) == (
        "backup.verification",
        "d1",
        "critical",
    )
    (mail,) = dag_env.mailbox.raw
    assert "supervisor@hospital.example" in mail and name in mail


def test_missing_row_in_restored_copy_fails_naming_the_table(dag_env, make_backup, monkeypatch):
    from hisops.airflow import verify_tasks

    outcome = make_backup(dag_env.db)
    monkeypatch.setattr(
        verify_tasks,
        "BEFORE_CHECKS_HOOK",
        lambda dsn: scratch.run_sql(
            dsn,
            ["DELETE FROM lab_result WHERE result_id = (SELECT max(result_id) FROM lab_result)"],
        ),
    )

    run = load_dag("backup_verification").test(run_conf={"backup_id": outcome.backup_id})

    assert run.state == "failed"
    (verification,) = dag_env.catalog.verifications_for(outcome.backup_id)
    failed = verification.details["failed_checks"]
    assert [(c["kind"], c["table"]) for c in failed] == [("row_count", "public.lab_result")]
    assert "public.lab_result" in verification.error
    assert dag_env.catalog.get_backup(outcome.backup_id).state == "failed"


def test_asset_events_select_the_backups_to_drill():
    from hisops.airflow.verify_tasks import asset_event_extras, verification_schedule
    from hisops.verify.plan import backup_ids_from_events

    run = SimpleNamespace(
        consumed_asset_events=[
            SimpleNamespace(extra={"backup_id": 7, "kind": "database"}),
            SimpleNamespace(
                extra={"backup_id": 7, "kind": "database"}
            ),  # same event seen via the alias
            SimpleNamespace(extra={"backup_id": 9, "kind": "files"}),
            SimpleNamespace(extra={"backup_id": 8}),
            SimpleNamespace(extra={"backup_id": 10, "kind": "physical"}),
        ]
    )
    assert backup_ids_from_events(asset_event_extras({"dag_run": run})) == [7, 8, 10]
    from hisops.airflow.backup_tasks import backup_asset
    from hisops.inventory.loader import load_inventory

    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    refs = verification_schedule(inv).objects
    from hisops.pitr.schedule import asset_uri

    assert [r.name for r in refs] == [backup_asset(d.id).name for _, d in inv.all_databases()] + [
        asset_uri(s.id) for _, s in inv.all_servers() if s.pitr
    ]


def test_teardown_drops_the_planned_scratch_database_of_a_killed_drill(dag_env, pg):
    from hisops.airflow.verify_tasks import drop_scratch

    name = scratch.scratch_name("d1", 42)
    scratch.create_database(pg.dsn(), name)  # as if the worker died mid-drill
    assert drop_scratch([{"database_id": "d1", "backup_id": 42, "scratch_db": name}]) == [name]
    assert not scratch.database_exists(pg.dsn(), name)
    with pytest.raises(scratch.ScratchGuardError):
        drop_scratch([{"database_id": "d1", "backup_id": 42, "scratch_db": dag_env.db}])
    assert scratch.database_exists(pg.dsn(), dag_env.db)


def test_a_completed_backup_event_queues_the_verification_dag(airflow_db, monkeypatch, tmp_path):
    """The scheduler side of the asset contract: an event on db_backup's asset ``hisops://backup/<id>``
    (as the alias emits it) makes backup_verification due — our schedule refers to it by name."""
    from airflow.assets.manager import AssetManager
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.asset import AssetActive, AssetDagRunQueue, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    monkeypatch.setenv("HISOPS_INVENTORY", str(logical_inventory(tmp_path)))
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(REPO / "dags" / "backup_verification.py"))
    assert not bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    uri = "hisops://backup/d1"
    with create_session() as session:
        session.execute(
            delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == "backup_verification")
        )
        model = session.query(AssetModel).filter_by(name=uri, uri=uri).one_or_none()
        if model is None:  # (other tests' db_backup runs may have created it already)
            model = AssetModel(name=uri, uri=uri)
            session.add(model)
            session.flush()
        if session.query(AssetActive).filter_by(name=uri, uri=uri).one_or_none() is None:
            # what the scheduler's orphanage check does for an asset materialised through an alias
            session.add(AssetActive.for_asset(model))
        session.query(DagModel).filter_by(dag_id="backup_verification").update({"is_paused": False})
        session.flush()
        AssetManager.register_asset_change(
            asset=model,
            extra={"backup_id": 1, "kind": "database"},
            source_alias_names=["hisops-backup"],
            session=session,
        )
        session.flush()
        due, _ = DagModel.dags_needing_dagruns(session)
        assert "backup_verification" in {d.dag_id for d in due}
        session.rollback()


def test_every_undrilled_backup_is_drilled_and_a_vanished_one_fails_the_run(dag_env, make_backup):
    first, second, vanished = (
        make_backup(dag_env.db),
        make_backup(dag_env.db),
        make_backup(dag_env.db),
    )
    import shutil

    shutil.rmtree(vanished.path)

    run = load_dag("backup_verification").test()  # as the asset trigger does: no backup_id

    assert run.state == "failed"  # never green while a backup's files are gone
    repo = dag_env.catalog
    assert repo.get_backup(first.backup_id).state == "verified"  # not only the newest is drilled
    assert repo.get_backup(second.backup_id).state == "verified"
    assert repo.get_backup(vanished.backup_id).state == "missing"
    (incident,) = [i for i in repo.open_incidents() if i.check_id == "backup.storage"]
    assert f"#{vanished.backup_id}" in incident.title_zh
    assert any(f"#{vanished.backup_id}" in m for m in dag_env.mailbox.raw)
    assert (
        load_dag("backup_verification").test().state == "success"
    )  # nothing pending: no second drill
    assert len(repo.verifications_for(second.backup_id)) == 1


def test_incident_resolution_names_the_passing_backup_and_keeps_failed_ones(dag_env, make_backup):
    bad = make_backup(dag_env.db)
    flip_a_byte(bad.path)
    assert (
        load_dag("backup_verification").test(run_conf={"backup_id": bad.backup_id}).state
        == "failed"
    )
    good = make_backup(dag_env.db)

    assert (
        load_dag("backup_verification").test(run_conf={"backup_id": good.backup_id}).state
        == "success"
    )

    repo = dag_env.catalog
    (incident,) = [i for i in repo.incidents() if i.check_id == "backup.verification"]
    assert incident.state == "resolved"
    assert (
        f"#{good.backup_id}" in incident.resolution_note
        and f"#{bad.backup_id}" in incident.resolution_note
    )
    assert repo.get_backup(bad.backup_id).state == "failed"
