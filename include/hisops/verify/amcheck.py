"""索引结构检查 amcheck: ``bt_index_check`` on every btree index of the restored database.

Catches structurally corrupt indexes (wrong ordering, broken page links) — what a restore drill
should also prove about what pg_restore built. ``heapallindexed`` (off by default) additionally
checks that every heap tuple has an index entry: thorough, but a full heap pass per index.
Runs in a few parallel sessions (the check takes only AccessShareLock); largest indexes first.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hisops.targets.postgres import connect

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)
APP = "hisops-amcheck"  # application_name of the check's sessions

BTREE_INDEXES = """
    SELECT c.oid, n.nspname || '.' || c.relname, tn.nspname || '.' || t.relname
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_namespace tn ON tn.oid = t.relnamespace
      JOIN pg_am am ON am.oid = c.relam
     WHERE am.amname = 'btree' AND i.indisready AND i.indisvalid AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_toast%%'
     ORDER BY pg_relation_size(c.oid) DESC
"""


@dataclass(frozen=True)
class IndexProblem:
    index: str
    table: str
    error: str


@dataclass(frozen=True)
class AmcheckResult:
    checked: int = 0
    problems: tuple[IndexProblem, ...] = ()
    seconds: float = 0.0
    unavailable: str | None = None  # why amcheck could not run (extension missing / no privilege)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "seconds": self.seconds,
            "unavailable": self.unavailable,
            "problems": [p.__dict__ for p in self.problems],
        }


def _connect(dsn: str) -> PgConnection:
    return connect(dsn, application_name=APP, autocommit=True)


def ensure_extension(dsn: str) -> str | None:
    """CREATE EXTENSION amcheck in the scratch database; the reason when that is impossible."""
    import psycopg2

    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        return None
    except psycopg2.Error as exc:
        return f"amcheck 不可用 unavailable: {str(exc).strip().splitlines()[0]}"
    finally:
        conn.close()


def btree_indexes(dsn: str) -> list[tuple[int, str, str]]:
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(BTREE_INDEXES)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def _check_some(
    dsn: str, indexes: list[tuple[int, str, str]], heapallindexed: bool
) -> list[IndexProblem]:
    import psycopg2

    problems = []
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            for oid, index, table in indexes:
                try:
                    cur.execute(
                        "SELECT bt_index_check(%s::oid::regclass, %s)", (oid, heapallindexed)
                    )
                except psycopg2.Error as exc:
                    problems.append(
                        IndexProblem(index, table, str(exc).strip().splitlines()[0][:300])
                    )
    finally:
        conn.close()
    return problems


def check_indexes(dsn: str, jobs: int = 2, heapallindexed: bool = False) -> AmcheckResult:
    """bt_index_check every btree index of ``dsn`` in ``jobs`` sessions."""
    start = time.monotonic()
    reason = ensure_extension(dsn)
    if reason:
        log.warning("%s", reason)
        return AmcheckResult(unavailable=reason, seconds=round(time.monotonic() - start, 3))
    indexes = btree_indexes(dsn)
    jobs = max(1, min(jobs, len(indexes) or 1))
    shares = [indexes[i::jobs] for i in range(jobs)]  # largest first, dealt round-robin
    with ThreadPoolExecutor(jobs, thread_name_prefix="amcheck") as pool:
        found = [
            p
            for part in pool.map(lambda s: _check_some(dsn, s, heapallindexed), shares)
            for p in part
        ]
    result = AmcheckResult(
        checked=len(indexes), problems=tuple(found), seconds=round(time.monotonic() - start, 3)
    )
    log.info(
        "amcheck: %d btree indexes, %d problems, %.1fs", result.checked, len(found), result.seconds
    )
    return result
