"""Airflow metadata cleanup for real: runs made by dag.test(), aged in the suite's metadata DB,
then removed by `airflow db clean` in a child process — as a least-privilege role."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hisops.cleanup import airflow_meta as am
from hisops.cleanup.hostfiles import FileSink
from hisops.targets.runner import LocalRunner
from sqlalchemy import create_engine, make_url, text

from tests.cleanup.conftest import aged, tree_state

PROBE = """
from datetime import UTC, datetime
from airflow.sdk import dag, task

@dag(dag_id=%r, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False)
def probe():
    @task
    def push() -> dict:
        return {"n": 1}

    push()

probe()
"""


def _probe_dag(dag_id: str, folder):
    """A tiny DAG, parsed and written to the metadata DB like the dag-processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()

    path = folder / f"{dag_id}.py"
    path.write_text(PROBE % dag_id)
    bag = DagBag(dag_folder=str(path))
    sync_bag_to_db(bag, "dags-folder", None)
    return bag.dags[dag_id]


@pytest.fixture
def aged_runs(airflow_db, tmp_path):
    """Three runs of a probe DAG: 60 and 50 days old (scheduled) and a fresh manual one."""
    dag_id = f"hisops_clean_probe_{uuid.uuid4().hex[:6]}"
    dag = _probe_dag(dag_id, tmp_path)
    runs = [dag.test().run_id for _ in range(3)]
    engine = create_engine(airflow_db)
    with engine.begin() as conn:
        for run_id, days in zip(runs[:2], (60, 50), strict=True):
            age = {"r": run_id, "d": days}
            conn.execute(
                text(
                    "UPDATE dag_run SET start_date = start_date - make_interval(days => :d), "
                    "run_type = 'scheduled' WHERE run_id = :r"
                ),
                age,
            )
            conn.execute(
                text(
                    "UPDATE task_instance SET start_date = start_date - make_interval(days => :d) "
                    "WHERE run_id = :r"
                ),
                age,
            )
            conn.execute(
                text(
                    "UPDATE xcom SET timestamp = timestamp - make_interval(days => :d) "
                    "WHERE run_id = :r"
                ),
                age,
            )
    yield dag_id, runs, engine
    engine.dispose()


def _counts(engine, dag_id: str, run_id: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(f"SELECT count(*) FROM {t} WHERE dag_id = :d AND run_id = :r"),
                {"d": dag_id, "r": run_id},
            ).scalar_one()
            for t in ("dag_run", "task_instance", "xcom")
        )


@pytest.fixture
def least_privilege_url(airflow_db):
    role, password = f"hisops_clean_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    engine = create_engine(airflow_db)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        for (
            grant
        ) in am.CLEANER_GRANTS:  # exactly what the README and the demo give the cleaner role
            conn.execute(text(grant.format(role=role)))
    url = make_url(airflow_db).set(username=role, password=password)
    yield url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
    engine.dispose()


def test_db_clean_in_a_child_process_keeps_the_latest_run_of_each_dag(
    aged_runs, least_privilege_url
):
    dag_id, (oldest, older, fresh), engine = aged_runs
    before = datetime.now(UTC) - timedelta(days=30)
    initial = {run: _counts(engine, dag_id, run) for run in (oldest, older, fresh)}
    assert initial[oldest][:2] == (1, 1) and initial[oldest][2] >= 1  # run, task instance, XComs

    dry = am.clean_metadata(least_privilege_url, before, dry_run=True)
    assert {s.item: s.rows for s in dry}["dag_run"] == 1
    assert _counts(engine, dag_id, oldest) == initial[oldest]  # dry run deleted nothing

    steps = am.clean_metadata(least_privilege_url, before, dry_run=False)
    assert not [s for s in steps if s.state == "failed"], [s.reason for s in steps if s.reason]
    assert {s.item: s.rows for s in steps}["dag_run"] == 1
    assert _counts(engine, dag_id, oldest) == (0, 0, 0)  # run, its task instance and XCom gone
    # the latest scheduled run is kept (the scheduler continues from it); Airflow cleans task
    # instances and XComs by their own age, so those of the kept run went too (50 days old)
    assert _counts(engine, dag_id, older) == (1, 0, 0)
    assert _counts(engine, dag_id, fresh) == initial[fresh]
    with engine.connect() as conn:
        leftovers = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE tablename LIKE '_airflow_deleted%'")
        )
        assert leftovers.scalar_one() == 0  # --skip-archive: no archive tables left behind


def test_db_clean_failure_is_a_failed_step_without_the_password(airflow_db):
    url = make_url(airflow_db).set(username="nobody_here", password="s3cret-pw")
    steps = am.clean_metadata(
        url.render_as_string(hide_password=False), datetime.now(UTC), dry_run=True
    )
    failed = [s for s in steps if s.state == "failed"]
    assert failed and "s3cret-pw" not in failed[0].reason


def test_task_log_files_older_than_n_days_are_removed(tmp_path):
    logs = tmp_path / "logs"
    old = aged(logs / "dag_id=x" / "run_id=old" / "task_id=t" / "attempt=1.log", 40)
    new = aged(logs / "dag_id=x" / "run_id=new" / "task_id=t" / "attempt=1.log", 1)
    before = tree_state(logs)
    rows: list = []
    dry = am.clean_task_logs(
        logs,
        30,
        LocalRunner("airflow"),
        dry_run=True,
        sink=FileSink(rows.extend, None),
        protected=[],
    )
    assert tree_state(logs) == before and dry[0].files == 1
    os.utime(old.parent, (old.stat().st_mtime, old.stat().st_mtime))
    steps = am.clean_task_logs(
        logs, 30, LocalRunner("airflow"), dry_run=False, sink=FileSink(None, None), protected=[]
    )
    assert not old.exists() and new.exists() and steps[0].scope == "task_logs"
    assert [r["path"] for r in rows] == [str(old)]
