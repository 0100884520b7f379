"""A planted database for tuning tests: a frequent query without its index, an unused and a
duplicate index, bloat by updates and deletes; pg_stat_statements and hypopg in it."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest
from hisops.inventory.loader import load_inventory
from hisops.runinfo import RunInfo

REPO = Path(__file__).resolve().parents[2]
DB_ID = "his_outpatient"  # an inventory database id; its DSN points at the planted database

PLANT = """
CREATE TABLE visit (id bigserial PRIMARY KEY, patient_id int NOT NULL, dept_id int NOT NULL,
                    status text NOT NULL, visited_on date NOT NULL, note text);
INSERT INTO visit (patient_id, dept_id, status, visited_on, note)
SELECT (g * 7919) %% 20000, g %% 40, CASE WHEN g %% 10 = 0 THEN 'open' ELSE 'closed' END,
       date '2026-01-01' + (g %% 300), repeat('x', 60)
FROM generate_series(1, %(rows)s) g;
CREATE INDEX visit_dept_idx ON visit (dept_id);
CREATE INDEX visit_dept_dup_idx ON visit (dept_id);
CREATE INDEX visit_note_idx ON visit (note);
UPDATE visit SET note = repeat('y', 60) WHERE id %% 3 = 0;
DELETE FROM visit WHERE id %% 5 = 0;
ANALYZE visit;
"""
SLOW_QUERY = "SELECT id, status FROM visit WHERE patient_id = %s"


def run_workload(dsn: str, calls: int = 60) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for i in range(calls):
            cur.execute(SLOW_QUERY, (i * 37 % 20000,))
            cur.fetchall()
            cur.execute("SELECT count(*) FROM visit WHERE dept_id = %s", (i % 40,))
    conn.close()


@pytest.fixture
def planted(pg, new_db) -> str:
    """DSN of a planted database (hypopg and pg_stat_statements created), workload run once."""
    name = new_db("tune")
    dsn = pg.dsn(name)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg; CREATE EXTENSION amcheck"
        )
        cur.execute(PLANT, {"rows": 60_000})
    conn.close()
    run_workload(dsn)
    return dsn


@pytest.fixture
def inventory():
    """The example inventory with thresholds small enough for the test's few calls."""
    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    tuning = inv.tuning.model_copy(
        update={
            "slow_mean_ms": 0.001,
            "slow_min_calls": 20,
            "unused_index_min_mb": 0.1,
            "big_table_mb": 1,
        }
    )
    return inv.model_copy(update={"tuning": tuning})


@pytest.fixture
def run() -> RunInfo:
    return RunInfo(dag_id="performance_review", run_id="manual__test", triggering_user="operator1")


def verified_backup(repo, database_id: str, folder, system_id: str = "outpatient") -> int:
    """A catalogued verified backup whose manifest exists (what hisops.backup.trust checks)."""
    import hashlib
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.json"
    manifest.write_text('{"files": []}')
    bid = repo.register_backup_start(database_id, system_id, "database", str(folder))
    repo.complete_backup(bid, {"files": []}, hashlib.sha256(manifest.read_bytes()).hexdigest(), 1)
    repo.mark_backup_verified(bid)
    return bid
