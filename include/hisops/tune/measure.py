"""Before/after of one maintenance object: size, bloat estimate, index scans, and plan cost and mean
time of the top statements that touch its table (from pg_stat_statements, never reset)."""

from __future__ import annotations

import logging
from typing import Any

from hisops.tune import health
from hisops.tune.plan import quoted

log = logging.getLogger(__name__)
TOP_AFFECTED = 3

OBJECT = """/* hisops:tune */
SELECT pg_total_relation_size(c.oid)::bigint AS bytes, c.relkind::text AS relkind,
       coalesce(i.idx_scan, t.idx_scan, 0)::bigint AS idx_scan, t.n_dead_tup::bigint AS dead
FROM pg_class c
LEFT JOIN pg_stat_user_indexes i ON i.indexrelid = c.oid
LEFT JOIN pg_stat_user_tables t ON t.relid = c.oid
WHERE c.oid = to_regclass(%s)"""

AFFECTED = """/* hisops:tune */
SELECT queryid::text, query, calls, mean_exec_time FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
  AND query ~* %s AND query NOT LIKE '%%hisops:%%' AND query ~* '^\\s*(select|with)'
ORDER BY total_exec_time DESC LIMIT %s"""


def _bloat(conn: Any, obj: str) -> dict[str, Any]:
    indexes, tables = health.read_objects(conn)
    for i in indexes:
        if i.index == obj:
            return {
                "bloat_bytes": i.bloat_bytes,
                "bloat_pct": round(i.bloat_pct, 1),
                "valid": i.valid,
            }
    for t in tables:
        if t.table == obj:
            return {"bloat_bytes": t.bloat_bytes, "bloat_pct": round(t.bloat_pct, 1)}
    return {}


def _affected(conn: Any, table: str) -> list[dict[str, Any]]:
    import psycopg2

    from hisops.tune.advisor import explain

    name = table.split(".")[-1]
    out = []
    with conn.cursor() as cur:
        try:
            cur.execute(AFFECTED, (rf"\m{name}\M", TOP_AFFECTED))
            rows = cur.fetchall()
        except psycopg2.Error:
            return []  # no pg_stat_statements: nothing to compare
        for queryid, query, calls, mean in rows:
            entry = {
                "queryid": queryid,
                "query": query[:300],
                "calls": calls,
                "mean_ms": round(mean, 3),
            }
            try:
                entry["plan_cost"] = float(explain(cur, query)["Total Cost"])
            except psycopg2.Error:
                cur.execute("DEALLOCATE ALL")
                entry["plan_cost"] = None
            out.append(entry)
    return out


def snapshot(conn: Any, obj: str, table: str) -> dict[str, Any]:
    """What the catalog keeps before and after a step (an object that is
    gone has ``exists: False``)."""
    with conn.cursor() as cur:
        cur.execute(OBJECT, (quoted(obj),))
        row = cur.fetchone()
    if row is None:
        return {"exists": False, "queries": _affected(conn, table)}
    return {
        "exists": True,
        "bytes": row[0],
        "relkind": row[1],
        "idx_scan": row[2],
        "dead": row[3],
        **_bloat(conn, obj),
        "queries": _affected(conn, table),
    }
