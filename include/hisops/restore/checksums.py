"""Row checksums of a database: compare production before and after a restore (tests, ops)."""

from __future__ import annotations


def table_checksums(dsn: str) -> dict[str, str]:
    """md5 of every user table's rows (sorted): compare production before/after (tests, ops)."""
    from hisops.targets.postgres import connect

    conn = connect(dsn, application_name="hisops-restore", connect_timeout=15)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1"
            )
            tables = [r[0] for r in cur.fetchall()]
            out = {}
            for table in tables:
                cur.execute(
                    "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                    f"FROM {table} t"
                )
                out[table] = cur.fetchone()[0]
            return out
    finally:
        conn.close()
