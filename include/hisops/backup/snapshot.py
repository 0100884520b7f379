"""The exported snapshot a backup is taken in, and the facts read in that same snapshot.

``exported_snapshot(dsn)`` opens a REPEATABLE READ, READ ONLY transaction and exports its snapshot
(``pg_export_snapshot()``); ``pg_dump --snapshot=<id>`` then sees exactly the data this
transaction sees, as long as it stays open. In the same transaction we read

- the schema fingerprint: tables, columns and types, primary keys, unique constraints and indexes,
  foreign keys, index names — canonical JSON, SHA-256;
- per-table row counts: exact ``count(*)`` for tables whose estimate (``reltuples``) is at most
  ``exact_count_max_rows``, otherwise the estimate, flagged ``exact: false``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hisops.backup.manifest import ForeignKey, SchemaInfo, Snapshot, TableCount, TableSchema

USER_TABLES = """
    SELECT c.oid, n.nspname, c.relname, c.reltuples::bigint, pg_relation_size(c.oid)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                       AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY n.nspname, c.relname
"""
COLUMNS = """
    SELECT attrelid, attname, format_type(atttypid, atttypmod), attnotnull
      FROM pg_attribute WHERE attrelid = ANY(%s) AND attnum > 0 AND NOT attisdropped
     ORDER BY attrelid, attnum
"""
CONSTRAINTS = """
    SELECT con.conrelid, con.contype,
           ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
                 ORDER BY k.ord)::text[],
           rn.nspname || '.' || rc.relname,
           ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
                 ORDER BY k.ord)::text[]
      FROM pg_constraint con
      LEFT JOIN pg_class rc ON rc.oid = con.confrelid
      LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
     WHERE con.conrelid = ANY(%s) AND con.contype IN ('p', 'u', 'f')
     ORDER BY con.conrelid, con.conname
"""
INDEXES = """
    SELECT i.indrelid, ic.relname, i.indisunique, i.indisprimary,
           EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
             AND c.contype IN ('p', 'u')),
           ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                 ORDER BY k.ord)::text[],
           i.indexprs IS NULL AND i.indpred IS NULL
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = ANY(%s)
     ORDER BY i.indrelid, ic.relname
"""


@dataclass(frozen=True)
class ServerInfo:
    host: str
    port: int
    dbname: str
    server_version: str
    server_version_num: int
    database_size: int

    @property
    def major(self) -> int:
        return self.server_version_num // 10000


@dataclass(frozen=True)
class UserTable:
    oid: int
    schema: str
    name: str
    estimate: int  # reltuples; -1 when never analyzed
    heap_bytes: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def server_info(conn: Any) -> ServerInfo:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
            " current_database(), pg_database_size(current_database()),"
            " coalesce(inet_server_port(), 0)"
        )
        version, num, dbname, size, port = cur.fetchone()
    params = conn.get_dsn_parameters()
    return ServerInfo(
        params.get("host", ""), int(params.get("port") or port), dbname, version, num, size
    )


@contextmanager
def exported_snapshot(conn: Any) -> Iterator[Snapshot]:
    """Open the REPEATABLE READ transaction on ``conn`` (autocommit off) and export its snapshot.

    The transaction stays open until the ``with`` block ends (then it is rolled back: read only)."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET idle_in_transaction_session_timeout = 0")
        cur.execute("SET statement_timeout = 0")
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            cur.execute(
                "SELECT pg_export_snapshot(), txid_current_snapshot()::text,"
                " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                " ELSE pg_current_wal_lsn() END::text, now()"
            )
            snapshot_id, txid, lsn, taken_at = cur.fetchone()
            yield Snapshot(
                snapshot_id=snapshot_id,
                taken_at=taken_at.astimezone(UTC),
                txid_snapshot=txid,
                lsn=lsn,
            )
        finally:
            if not conn.closed:
                with contextlib.suppress(Exception):  # the connection may be gone (source stopped)
                    cur.execute("ROLLBACK")


def user_tables(conn: Any) -> list[UserTable]:
    with conn.cursor() as cur:
        cur.execute(USER_TABLES)
        return [UserTable(*row) for row in cur.fetchall()]


# --- row counts -------------------------------------------------------------------------------


def wants_exact(table: UserTable, exact_count_max_rows: int) -> bool:
    """Exact count when the estimate is small enough; never-analyzed tables judged by heap size."""
    if table.estimate >= 0:
        return table.estimate <= exact_count_max_rows
    return table.heap_bytes <= exact_count_max_rows * 100  # ≥ 100 bytes per row: a safe upper bound


def count_rows(conn: Any, tables: list[UserTable], exact_count_max_rows: int) -> list[TableCount]:
    """Row counts in the current (snapshot) transaction."""
    from psycopg2 import sql

    out: list[TableCount] = []
    with conn.cursor() as cur:
        for t in tables:
            if wants_exact(t, exact_count_max_rows):
                cur.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(
                        sql.Identifier(t.schema), sql.Identifier(t.name)
                    )
                )
                out.append(
                    TableCount(schema=t.schema, name=t.name, rows=cur.fetchone()[0], exact=True)
                )
            else:
                out.append(
                    TableCount(schema=t.schema, name=t.name, rows=max(t.estimate, 0), exact=False)
                )
    return out


# --- schema fingerprint -----------------------------------------------------------------------


def schema_info(conn: Any, tables: list[UserTable]) -> SchemaInfo:
    oids = [t.oid for t in tables]
    parts: dict[int, dict[str, Any]] = {
        t.oid: {"columns": [], "primary_key": [], "unique": [], "foreign_keys": [], "indexes": []}
        for t in tables
    }
    with conn.cursor() as cur:
        cur.execute(COLUMNS, (oids,))
        for oid, name, typ, not_null in cur.fetchall():
            parts[oid]["columns"].append((name, typ, not_null))
        cur.execute(CONSTRAINTS, (oids,))
        for oid, kind, cols, ref_table, ref_cols in cur.fetchall():
            _add_constraint(parts[oid], kind, cols, ref_table, ref_cols)
        cur.execute(INDEXES, (oids,))
        for oid, name, unique, primary, backs_constraint, cols, plain in cur.fetchall():
            parts[oid]["indexes"].append(name)
            if (
                unique
                and not primary
                and not backs_constraint
                and plain
                and cols not in parts[oid]["unique"]
            ):
                parts[oid]["unique"].append(cols)
    by_name = {t.qualified: _table_schema(parts[t.oid]) for t in tables}
    return SchemaInfo(fingerprint_sha256=fingerprint(by_name), tables=by_name)


def _add_constraint(
    part: dict[str, Any], kind: str, cols: list[str], ref_table: str | None, ref_cols: list[str]
) -> None:
    if kind == "p":
        part["primary_key"] = list(cols)
    elif kind == "u":
        part["unique"].append(list(cols))
    else:
        part["foreign_keys"].append(
            ForeignKey(columns=list(cols), ref_table=ref_table or "", ref_columns=list(ref_cols))
        )


def _table_schema(part: dict[str, Any]) -> TableSchema:
    return TableSchema(
        columns=part["columns"],
        primary_key=part["primary_key"],
        unique=sorted(part["unique"]),
        foreign_keys=sorted(part["foreign_keys"], key=lambda f: (f.columns, f.ref_table)),
        indexes=sorted(part["indexes"]),
    )


def fingerprint(tables: dict[str, TableSchema]) -> str:
    """SHA-256 of the canonical JSON of the schema (sorted keys, no whitespace)."""
    canonical = {name: tables[name].model_dump(mode="json") for name in sorted(tables)}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def now_utc() -> datetime:
    return datetime.now(UTC)
