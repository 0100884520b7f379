"""Planted tuning problems for the demo and the benchmark (synthetic data only, never production).

``plant(dsn, rows)`` adds 药房发药记录 ``pharmacy_dispense_log`` to a synthetic HIS database: a
frequent lookup by prescription number without its index (the missing index performance_review must
prove with hypopg), an index nobody uses, a duplicate index, and bloat by updates and deletes;
it creates the extensions the review and maintenance use. ``run_workload`` plays the pharmacy's
lookups (enough calls for pghero's "slow": ≥ 100 calls of ≥ 20 ms on a few hundred thousand rows).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from hisops.targets.postgres import connect

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

APP = "hisops-tuning-plant"  # application_name of the plant's and the workload's sessions
TABLE = "pharmacy_dispense_log"
SLOW_QUERY = f"SELECT log_id, dispensed_at, quantity FROM {TABLE} WHERE prescription_no = %s"
MISSING_INDEX_COLUMN = "prescription_no"

PLANT = f"""
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS amcheck;
CREATE TABLE IF NOT EXISTS {TABLE} (
    log_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prescription_no varchar(20)  NOT NULL,
    drug_id         integer      NOT NULL,
    window_no       smallint     NOT NULL,
    pharmacist      varchar(16)  NOT NULL,
    quantity        numeric(10,2) NOT NULL,
    dispensed_at    timestamp(0) NOT NULL,
    remark          text
) WITH (autovacuum_enabled = false);
COMMENT ON TABLE {TABLE} IS '药房发药记录（演示/基准的预埋问题）'
    'Pharmacy dispensing log (planted tuning problems)';
INSERT INTO {TABLE}
       (prescription_no, drug_id, window_no, pharmacist, quantity, dispensed_at, remark)
SELECT 'CF' || lpad(((g::bigint * 7919) %% %(rows)s + 1)::text, 12, '0'), g %% 60 + 1,
       g %% 8 + 1, '药师' || (g %% 20), (g %% 9) + 1,
       timestamp '2026-01-01' + make_interval(secs => g * 37), repeat('备注', 8)
FROM generate_series(1, %(rows)s) g;
CREATE INDEX IF NOT EXISTS ix_dispense_time ON {TABLE} (dispensed_at, window_no);   -- never used
CREATE INDEX IF NOT EXISTS ix_dispense_drug ON {TABLE} (drug_id);
CREATE INDEX IF NOT EXISTS ix_dispense_drug_dup ON {TABLE} (drug_id);               -- duplicate
UPDATE {TABLE} SET drug_id = drug_id, remark = repeat('改', 8)
 WHERE log_id %% 3 = 0;  -- bloat (non-HOT)
DELETE FROM {TABLE} WHERE log_id %% 5 = 0;
ANALYZE {TABLE};
"""


def _connect(dsn: str) -> PgConnection:
    return connect(dsn, application_name=APP, autocommit=True)


def planted(dsn: str) -> bool:
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def plant(dsn: str, rows: int = 400_000) -> None:
    """Create the planted table and problems (once; a second call leaves them as they are)."""
    if planted(dsn):
        return
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(PLANT, {"rows": int(rows)})
    finally:
        conn.close()


def run_workload(dsn: str, calls: int = 150, rows: int = 400_000) -> float:
    """The pharmacy's lookups by prescription number; returns the mean client-side time in ms."""
    conn = _connect(dsn)
    started = time.perf_counter()
    try:
        with conn.cursor() as cur:
            for i in range(calls):
                cur.execute(SLOW_QUERY, ("CF" + str((i * 104729) % rows + 1).zfill(12),))
                cur.fetchall()
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000 / max(calls, 1)
