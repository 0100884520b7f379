"""PostgreSQL checks (数据库巡检): seven catalog queries, then pure evaluation into findings.

Light on production by construction:
- seven statements per database, each one round trip returning one JSON row, all reading
  statistics views and catalogs only (no table data, no pgstattuple, no locks beyond catalog
  AccessShare); the session is read-only with statement_timeout and lock_timeout set
  (`hisops.targets.postgres.pg_session`), so a stuck catalog can cost at most a few seconds;
- every statement is tagged ``/* hisops:inspect:<name> */`` so pg_stat_statements (and
  bench/inspect_checks.py) can attribute the server time;
- a failing statement (e.g. missing privilege) turns only the checks fed by it into
  check_error findings; the others still run (autocommit: a failed statement aborts nothing).

Scope: connections, transaction-ID age, replication, uptime and version are cluster-wide (the
limits are); sessions, tables, bloat, sequences and indexes are those of the inspected
database. Query texts in details have their string literals removed and identifiers masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from hisops.catalog.records import FindingRecord, Severity
from hisops.inspect.findings import (
    Target,
    classify,
    fmt_bytes,
    fmt_seconds,
    mask_sensitive,
    plural,
    worst,
)
from hisops.inspect.findings import threshold_text as _th
from hisops.inventory.thresholds import Level

Facts = Mapping[str, Any]
Data = dict[str, Any]
Evaluator = Callable[[Target, Data, Facts], FindingRecord]

#: end of community support per major version (https://www.postgresql.org/support/versioning/)
EOL: dict[int, date] = {
    11: date(2023, 11, 9),
    12: date(2024, 11, 21),
    13: date(2025, 11, 13),
    14: date(2026, 11, 12),
    15: date(2027, 11, 11),
    16: date(2028, 11, 9),
    17: date(2029, 11, 8),
    18: date(2030, 11, 14),
}
MIN_CACHE_READS = 10_000  # blocks read+hit before the cache hit ratio means anything
MIN_GROWTH_INTERVAL_H = 1.0  # two size samples closer than this give no growth rate


# --- the statements ----------------------------------------------------------------------------


def q_instance(version_num: int) -> str:
    return """/* hisops:inspect:instance */
SELECT json_build_object(
  'version', version(),
  'version_num', current_setting('server_version_num')::int,
  'started_at', pg_postmaster_start_time(),
  'uptime_s', extract(epoch FROM now() - pg_postmaster_start_time()),
  'in_recovery', pg_is_in_recovery(),
  'max_connections', current_setting('max_connections')::int,
  'reserved', current_setting('superuser_reserved_connections')::int,
  'freeze_max_age', current_setting('autovacuum_freeze_max_age')::bigint,
  'db_name', current_database(),
  'db_size', pg_database_size(current_database()),
  'blks_hit', d.blks_hit, 'blks_read', d.blks_read, 'stats_reset', d.stats_reset,
  'xid', (SELECT json_build_object('age', age(datfrozenxid), 'datname', datname)
          FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1),
  'client_backends', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
  'backends_with_db', (SELECT count(datid) FROM pg_stat_activity))
FROM pg_stat_database d WHERE d.datname = current_database()"""


def q_sessions(version_num: int) -> str:
    wait = (
        "extract(epoch FROM now() - coalesce(l.waitstart, now()))"
        if version_num >= 140000
        else "extract(epoch FROM now() - a.state_change)"
    )
    return f"""/* hisops:inspect:sessions */
WITH a AS (
  SELECT pid, usename, application_name AS app, client_addr::text AS client, state, state_change,
         extract(epoch FROM now() - query_start) AS query_s,
         extract(epoch FROM now() - xact_start) AS xact_s,
         extract(epoch FROM now() - state_change) AS state_s, left(query, 300) AS query
  FROM pg_stat_activity
  WHERE datname = current_database() AND pid <> pg_backend_pid()
    AND backend_type = 'client backend'),
w AS (
  SELECT l.pid, {wait} AS wait_s, l.locktype, l.mode,
         CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation, a.query,
         (SELECT json_agg(json_build_object('pid', b.pid, 'user', b.usename,
                 'app', b.application_name, 'state', b.state,
                 'xact_s', extract(epoch FROM now() - b.xact_start), 'query', left(b.query, 300)))
          FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(l.pid))) AS blockers
  FROM pg_locks l JOIN a ON a.pid = l.pid WHERE NOT l.granted)
SELECT json_build_object(
  'active_count', (SELECT count(*) FROM a WHERE state = 'active'),
  'active', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT pid, usename, app, client, query_s, xact_s, query FROM a
      WHERE state = 'active' ORDER BY query_s DESC LIMIT 5) x),
  'xact_count', (SELECT count(*) FROM a WHERE xact_s IS NOT NULL),
  'xact', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT pid, usename, app, client, state, xact_s, query_s, query FROM a
      WHERE xact_s IS NOT NULL ORDER BY xact_s DESC LIMIT 5) x),
  'idle_tx_count', (SELECT count(*) FROM a WHERE state LIKE 'idle in transaction%'),
  'idle_tx', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT pid, usename, app, client, state, state_s, xact_s, query FROM a
      WHERE state LIKE 'idle in transaction%' ORDER BY state_s DESC LIMIT 5) x),
  'waiting_count', (SELECT count(DISTINCT pid) FROM w),
  'waiting', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT * FROM w ORDER BY wait_s DESC LIMIT 5) x))"""


def q_tables(version_num: int) -> str:
    return """/* hisops:inspect:tables */
WITH s AS (
  SELECT st.schemaname || '.' || st.relname AS name, st.n_live_tup AS live, st.n_dead_tup AS dead,
         st.n_mod_since_analyze AS mods, greatest(c.reltuples, 0) AS reltuples,
         extract(epoch FROM now() - greatest(st.last_vacuum, st.last_autovacuum)) / 3600
           AS vacuum_h,
         extract(epoch FROM now() - greatest(st.last_analyze, st.last_autoanalyze)) / 3600
           AS analyze_h
  FROM pg_stat_user_tables st JOIN pg_class c ON c.oid = st.relid),
cfg AS (
  SELECT current_setting('autovacuum_vacuum_threshold')::float8 AS vt,
         current_setting('autovacuum_vacuum_scale_factor')::float8 AS vs,
         current_setting('autovacuum_analyze_threshold')::float8 AS at,
         current_setting('autovacuum_analyze_scale_factor')::float8 AS sf,
         current_setting('autovacuum')::bool AS autovacuum)
SELECT json_build_object(
  'tables', (SELECT count(*) FROM s),
  'autovacuum', (SELECT autovacuum FROM cfg),
  'dead', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT name, live, dead FROM s WHERE dead > 0 ORDER BY dead DESC LIMIT 50) x),
  'need_vacuum', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT name, dead, vacuum_h FROM s, cfg WHERE dead > vt + vs * reltuples
      ORDER BY vacuum_h DESC NULLS FIRST LIMIT 20) x),
  'need_analyze', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT name, mods, analyze_h FROM s, cfg WHERE mods > at + sf * reltuples
      ORDER BY analyze_h DESC NULLS FIRST LIMIT 20) x))"""


def q_bloat(version_num: int) -> str:
    """Table bloat estimated from pg_stats (after ioguix/pgsql-bloat-estimation;
    no extension, no table scan).

    Sizes are the files' real sizes (``pg_relation_size``), not ``relpages`` — that is only
    updated by VACUUM/ANALYZE, so a table that grew 3x since then looked small. Live and dead
    tuples come from the statistics system (``pg_stat_get_live_tuples``, current; the functions,
    not the pg_stat_user_tables view, which computes a dozen counters per table), falling back
    to ``reltuples`` when the statistics were reset. pg_stats is read per candidate table (LATERAL,
    so its privilege checks run only for those columns): joined wholesale it cost ~50 ms per fresh
    session.
    """
    return """/* hisops:inspect:bloat */
WITH t AS (
  SELECT tbl.oid, ns.nspname, tbl.relname,
         CASE WHEN pg_stat_get_live_tuples(tbl.oid) > 0 OR tbl.reltuples <= 0
              THEN pg_stat_get_live_tuples(tbl.oid)
              ELSE tbl.reltuples END::float8 AS reltuples,
         pg_stat_get_dead_tuples(tbl.oid) AS dead, pg_stat_get_live_tuples(tbl.oid) AS live,
         pg_relation_size(tbl.oid) / current_setting('block_size')::numeric AS heappages,
         coalesce(pg_relation_size(toast.oid), 0) / current_setting('block_size')::numeric
           AS toastpages,
         coalesce(toast.reltuples, 0) AS toasttuples,
         coalesce(substring(array_to_string(tbl.reloptions, ' ')
                            FROM 'fillfactor=([0-9]+)')::int, 100) AS ff,
         current_setting('block_size')::numeric AS bs,
         CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END
           AS ma
  FROM pg_class tbl
  JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
  LEFT JOIN pg_class toast ON toast.oid = tbl.reltoastrelid
  WHERE tbl.relkind = 'r' AND pg_relation_size(tbl.oid) >= 10 * current_setting('block_size')::int
    AND ns.nspname NOT IN ('pg_catalog', 'information_schema')),
att AS (
  SELECT t.*, w.* FROM t, LATERAL (
    SELECT 23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(*)) / 8 ELSE 0 END
             AS hdr,
           sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 1024)) AS data_width,
           bool_or(a.atttypid = 'pg_catalog.name'::regtype) OR count(a.attname) <> count(s.attname)
             AS is_na
    FROM pg_attribute a
    LEFT JOIN pg_stats s ON s.schemaname = t.nspname AND s.tablename = t.relname
                        AND NOT s.inherited AND s.attname = a.attname
    WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) w),
tpl AS (
  SELECT *, 4 + hdr + data_width + 2 * ma - CASE WHEN hdr % ma = 0 THEN ma ELSE hdr % ma END
            - CASE WHEN ceil(data_width)::int % ma = 0 THEN ma ELSE ceil(data_width)::int % ma END
              AS tpl_size
  FROM att WHERE NOT is_na),
est AS (
  SELECT nspname || '.' || relname AS name, (heappages + toastpages) * bs AS real_bytes, live, dead,
         greatest(heappages + toastpages
                  - ceil(reltuples / ((bs - 24) * ff / (tpl_size * 100))) - ceil(toasttuples / 4),
                  0) * bs AS bloat_bytes
  FROM tpl)
SELECT json_build_object(
  'tables', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT name, real_bytes, bloat_bytes, live, dead FROM est
      ORDER BY bloat_bytes DESC LIMIT 10) x))"""


def q_index_bloat(version_num: int) -> str:
    """B-tree index bloat estimated from pg_stats (after
    ioguix/pgsql-bloat-estimation btree_bloat.sql).

    Expected pages = tuples / (usable page bytes × fillfactor / index tuple width); the real
    size is ``pg_relation_size``. Only the 100 largest indexes of at least 15 pages are estimated
    (bounded cost on databases with thousands of indexes; bloat that matters is in big ones);
    expression columns without statistics and ``name`` columns (the estimate is wrong for them)
    are left out. An estimate: it says so.
    """
    return """/* hisops:inspect:index_bloat */
WITH i AS (
  SELECT ci.oid AS idxoid, ix.indrelid AS tbloid, n.nspname, ct.relname AS tblname,
         ci.relname AS idxname,
         pg_relation_size(ci.oid) AS real_bytes,
         CASE WHEN ix.indpred IS NULL AND pg_stat_get_live_tuples(ct.oid) > 0
              THEN pg_stat_get_live_tuples(ct.oid)
              ELSE greatest(ci.reltuples, 0) END::float8 AS tuples,
         coalesce(substring(array_to_string(ci.reloptions, ' ')
                            FROM 'fillfactor=([0-9]+)')::int, 90) AS ff,
         string_to_array(textin(int2vectorout(ix.indkey)), ' ')::int[] AS indkey, ix.indnatts,
         current_setting('block_size')::numeric AS bs,
         CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END
           AS ma
  FROM pg_index ix
  JOIN pg_class ci ON ci.oid = ix.indexrelid
  JOIN pg_class ct ON ct.oid = ix.indrelid
  JOIN pg_namespace n ON n.oid = ct.relnamespace
  WHERE ci.relam = (SELECT oid FROM pg_am WHERE amname = 'btree') AND ix.indisvalid
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    AND pg_relation_size(ci.oid) >= 15 * current_setting('block_size')::int
  ORDER BY real_bytes DESC LIMIT 100),
w AS (
  SELECT i.*, x.* FROM i, LATERAL (
    SELECT sum((1 - coalesce(s1.null_frac, s2.null_frac, 0))
               * coalesce(s1.avg_width, s2.avg_width, 1024))
             AS data_width,
           max(coalesce(s1.null_frac, s2.null_frac, 0)) > 0 AS has_nulls,
           count(*) <> count(coalesce(s1.attname, s2.attname))
             OR bool_or(coalesce(a1.atttypid, a2.atttypid) = 'pg_catalog.name'::regtype) AS is_na
    FROM generate_series(1, i.indnatts) AS k(pos)
    LEFT JOIN pg_attribute a1 ON i.indkey[k.pos] <> 0 AND a1.attrelid = i.tbloid
                             AND a1.attnum = i.indkey[k.pos]
    LEFT JOIN pg_attribute a2 ON i.indkey[k.pos] = 0 AND a2.attrelid = i.idxoid
                             AND a2.attnum = k.pos
    LEFT JOIN pg_stats s1 ON a1.attname IS NOT NULL AND s1.schemaname = i.nspname
                         AND s1.tablename = i.tblname
                         AND s1.attname = a1.attname AND NOT s1.inherited
    LEFT JOIN pg_stats s2 ON a2.attname IS NOT NULL AND s2.schemaname = i.nspname
                         AND s2.tablename = i.idxname
                         AND s2.attname = a2.attname AND NOT s2.inherited) x),
h AS (
  SELECT *, CASE WHEN has_nulls THEN 12 ELSE 8 END AS hdr FROM w WHERE NOT is_na),
est AS (
  SELECT nspname || '.' || idxname AS name, nspname || '.' || tblname AS table_name, real_bytes, bs,
         1 + ceil(tuples / floor((bs - 24 - 16) * ff / (100 * (4 + hdr + ma
             - CASE WHEN hdr % ma = 0 THEN ma ELSE hdr % ma END + data_width + ma
             - CASE WHEN data_width = 0 THEN 0 WHEN data_width::int % ma = 0 THEN ma
                    ELSE data_width::int % ma END)::numeric))) AS est_pages
  FROM h)
SELECT json_build_object(
  'indexes', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT name, table_name, real_bytes, greatest(real_bytes - est_pages * bs, 0) AS bloat_bytes,
             round((100 * greatest(real_bytes - est_pages * bs, 0)
                    / nullif(real_bytes, 0))::numeric, 1) AS bloat_pct
      FROM est ORDER BY 4 DESC LIMIT 10) x))"""


def q_objects(version_num: int) -> str:
    """Sequences (limit = the owning column's type when it is narrower) and invalid indexes."""
    return """/* hisops:inspect:objects */
WITH seq AS (
  SELECT n.nspname || '.' || c.relname AS name, s.seqmin, s.seqmax, s.seqincrement AS inc,
         s.seqcycle AS cycle,
         CASE WHEN has_sequence_privilege(c.oid, 'SELECT,USAGE')
              THEN pg_sequence_last_value(c.oid) END AS last_value,
         (SELECT t.typname FROM pg_depend d
            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            JOIN pg_type t ON t.oid = a.atttypid
          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass
            AND d.deptype IN ('a', 'i') LIMIT 1) AS coltype
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE NOT pg_is_other_temp_schema(n.oid)),
lim AS (
  SELECT *, least(seqmax, CASE coltype WHEN 'int2' THEN 32767 WHEN 'int4' THEN 2147483647
                                       ELSE 9223372036854775807 END) AS hi,
            greatest(seqmin, CASE coltype WHEN 'int2' THEN -32768 WHEN 'int4' THEN -2147483648
                                          ELSE -9223372036854775808 END) AS lo
  FROM seq WHERE last_value IS NOT NULL),
pct AS (
  SELECT name, last_value, coltype, cycle, CASE WHEN inc > 0 THEN hi ELSE lo END AS limit_value,
         round(CASE WHEN inc > 0 THEN 100.0 * (last_value - seqmin) / nullif(hi - seqmin, 0)
                    ELSE 100.0 * (seqmax - last_value) / nullif(seqmax - lo, 0) END, 4) AS used_pct
  FROM lim)
SELECT json_build_object(
  'sequences', (SELECT count(*) FROM seq),
  'top', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT * FROM pct ORDER BY used_pct DESC NULLS LAST LIMIT 10) x),
  'invalid_indexes', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT n.nspname || '.' || c.relname AS name, t.relname AS table_name,
             pg_relation_size(c.oid) AS bytes
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_class t ON t.oid = i.indrelid WHERE NOT i.indisvalid ORDER BY 1) x))"""


def q_replication(version_num: int) -> str:
    wal_status = "wal_status" if version_num >= 130000 else "NULL::text AS wal_status"
    inactive = (
        "extract(epoch FROM now() - inactive_since) / 60 AS inactive_min"
        if version_num >= 170000
        else "NULL::float8 AS inactive_min"
    )
    return f"""/* hisops:inspect:replication */
SELECT json_build_object(
  'in_recovery', pg_is_in_recovery(),
  'standbys', CASE WHEN NOT pg_is_in_recovery() THEN (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT application_name AS name, client_addr::text AS client, state, sync_state,
             pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes,
             extract(epoch FROM replay_lag) AS lag_s FROM pg_stat_replication) x) END,
  'slots', (SELECT coalesce(json_agg(x), '[]') FROM (
      SELECT slot_name AS name, slot_type AS type, active, {wal_status}, {inactive},
             pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                  ELSE pg_current_wal_lsn() END, restart_lsn) AS retained_bytes
      FROM pg_replication_slots) x),
  'receiver', CASE WHEN pg_is_in_recovery() THEN (
      SELECT json_build_object('status', status, 'sender', sender_host)
      FROM pg_stat_wal_receiver) END,
  'replay', CASE WHEN pg_is_in_recovery() THEN json_build_object(
      'caught_up', pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(),
      'delay_s', extract(epoch FROM now() - pg_last_xact_replay_timestamp()),
      'lag_bytes', pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())) END,
  'archive_mode', current_setting('archive_mode'),
  'wal_ready', CASE WHEN current_setting('archive_mode') <> 'off'
                     AND has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE')
                    THEN (SELECT count(*) FROM pg_ls_archive_statusdir()
                          WHERE name ~ '[.]ready$') END,
  'archiver', (SELECT json_build_object('failed_count', failed_count,
                                        'last_failed_at', last_failed_time,
                                        'last_archived_at', last_archived_time)
               FROM pg_stat_archiver))"""


#: statement name → SQL builder (given server_version_num); run in this order
QUERIES: dict[str, Callable[[int], str]] = {
    "instance": q_instance,
    "sessions": q_sessions,
    "tables": q_tables,
    "bloat": q_bloat,
    "index_bloat": q_index_bloat,
    "objects": q_objects,
    "replication": q_replication,
}


def fetch_all(conn: Any) -> tuple[dict[str, Data], dict[str, BaseException]]:
    """Run every statement once; results and errors by statement name.

    Raises only when the connection itself is gone (the caller turns that into 'unreachable').
    """
    import psycopg2

    data: dict[str, Data] = {}
    errors: dict[str, BaseException] = {}
    version_num = 0
    for name, build in QUERIES.items():
        try:
            with conn.cursor() as cur:
                cur.execute(build(version_num))
                data[name] = cur.fetchone()[0] or {}
        except psycopg2.Error as exc:
            if conn.closed:
                raise
            errors[name] = exc
        if name == "instance":
            version_num = data.get("instance", {}).get("version_num") or 150000
    return data, errors


# --- evaluation --------------------------------------------------------------------------------


def redact_sql(query: str | None) -> str | None:
    """SQL text without its string literals, with numbers that look like IDs/phones masked."""
    if query is None:
        return None
    return mask_sensitive(re.sub(r"'(?:[^']|'')*'", "'?'", query))


def _redacted(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        row = dict(row)
        for key in ("query", *keys):
            if isinstance(row.get(key), str):
                row[key] = redact_sql(row[key])
        if isinstance(row.get("blockers"), list):
            row["blockers"] = _redacted(row["blockers"])
        out.append(row)
    return out


def check_version(t: Target, d: Data, facts: Facts) -> FindingRecord:
    major = d["version_num"] // 10000
    short = d["version"].split(" on ")[0].split(",")[0]
    eol = EOL.get(major)
    today = t.observed_at.date()
    if eol and today >= eol:
        return t.make(
            "db.version",
            "warn",
            d["version_num"],
            value_text=short,
            eol=eol.isoformat(),
            zh=f"{short} 已于 {eol} 停止社区维护（EOL）",
            en=f"{short} reached end of life on {eol}",
        )
    return t.make(
        "db.version",
        "ok",
        d["version_num"],
        value_text=short,
        eol=eol.isoformat() if eol else None,
        zh=f"版本 {short}",
        en=f"version {short}",
    )


def check_uptime(t: Target, d: Data, facts: Facts) -> FindingRecord:
    minutes = d["uptime_s"] / 60
    level = t.thresholds.uptime_minutes
    severity = classify(level, minutes)
    previous = _as_datetime(facts.get("previous_started_at"))
    started = _as_datetime(d["started_at"])
    restarted = (
        previous is not None
        and started is not None
        and abs((started - previous).total_seconds()) > 1
    )
    if restarted:
        severity = worst(severity, "warn")
    what = "重启过" if severity != "ok" else "运行中"
    return t.make(
        "db.uptime",
        severity,
        round(minutes, 1),
        level,
        unit=" min",
        value_text=fmt_seconds(d["uptime_s"]),
        zh=f"数据库{what}，已运行 {fmt_seconds(d['uptime_s'])}（启动于 {t.when(started)}）"
        + ("；自上次巡检以来发生过重启" if restarted else ""),
        en=f"up for {fmt_seconds(d['uptime_s'])} (started {t.when(started)})"
        + ("; restarted since the last inspection" if restarted else ""),
        started_at=d["started_at"],
        restarted_since_last=restarted,
        previous_started_at=previous,
        metrics={"server_started_epoch": started.timestamp()} if started else {},
    )


def check_connections(t: Target, d: Data, facts: Facts) -> FindingRecord:
    used, limit = d["client_backends"], d["max_connections"]
    pct = 100.0 * used / limit
    level = t.thresholds.connections_pct
    return t.percent(
        "db.connections",
        level,
        pct,
        value_text=f"{used}/{limit}",
        zh=f"连接数 {used}/{limit}（{pct:.1f}%，含保留给超级用户的 {d['reserved']} 个）",
        en=(
            f"{used} of {limit} connections in use ({pct:.1f}%; {d['reserved']} reserved for "
            "superusers)"
        ),
        client_backends=used,
        max_connections=limit,
        reserved=d["reserved"],
        backends_with_db=d["backends_with_db"],
        scope="cluster",
        metrics={"connections_pct": pct},
    )


def check_long_queries(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows = d["active"]
    longest = max((r["query_s"] or 0 for r in rows), default=0.0)
    level = t.thresholds.long_query_seconds
    severity = classify(level, longest)
    over = [r for r in rows if level.warn is not None and (r["query_s"] or 0) >= level.warn]
    zh = (
        f"{len(over)} 个查询运行超过 {fmt_seconds(level.warn)}，最长 {fmt_seconds(longest)}（pid "
        f"{rows[0]['pid']}）"
        if severity != "ok"
        else f"无长时间运行的查询（最长 {fmt_seconds(longest)}）"
    )
    en = (
        f"{plural(len(over), 'query', 'queries')} running longer than {fmt_seconds(level.warn)}, "
        f"longest {fmt_seconds(longest)} (pid {rows[0]['pid']})"
        if severity != "ok"
        else f"no long-running query (longest {fmt_seconds(longest)})"
    )
    return t.make(
        "db.long_queries",
        severity,
        round(longest, 1),
        level,
        unit=" s",
        zh=zh,
        en=en,
        active=d["active_count"],
        top=_redacted(rows),
    )


def check_long_transactions(t: Target, d: Data, facts: Facts) -> FindingRecord:
    """Age of the oldest open transaction (``xact_start``), however short its statements are:
    it holds back vacuum and keeps its locks (check_postgres ``txn_time``)."""
    rows, count = d["xact"], d["xact_count"]
    oldest = max((r["xact_s"] or 0 for r in rows), default=0.0)
    level = t.thresholds.long_transaction_seconds
    severity = classify(level, oldest)
    if not rows:
        zh, en = "无打开的事务", "no open transaction"
    elif severity == "ok":
        zh, en = (
            f"无长事务（最老 {fmt_seconds(oldest)}）",
            f"no long transaction (oldest {fmt_seconds(oldest)})",
        )
    else:
        top = rows[0]
        zh = (
            f"最老的事务已打开 {fmt_seconds(oldest)}（pid {top['pid']}，用户 {top['usename']}，"
            f"状态 {top['state']}）"
        )
        en = (
            f"the oldest transaction has been open {fmt_seconds(oldest)} (pid {top['pid']}, user "
            f"{top['usename']}, {top['state']})"
        )
    return t.make(
        "db.long_transactions",
        severity,
        round(oldest, 1),
        level,
        unit=" s",
        value_text=fmt_seconds(oldest),
        zh=zh,
        en=en,
        open_transactions=count,
        top=_redacted(rows),
    )


def check_idle_in_tx(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows, count = d["idle_tx"], d["idle_tx_count"]
    longest = max((r["state_s"] or 0 for r in rows), default=0.0)
    age_level, count_level = t.thresholds.idle_in_tx_seconds, t.thresholds.idle_in_tx_count
    severity = worst(classify(age_level, longest), classify(count_level, count))
    threshold = f"age: {_th(age_level, ' s')}; count: {_th(count_level)}"
    if count == 0:
        zh, en = "无事务空闲会话", "no session idle in transaction"
    else:
        zh = (
            f"{count} 个会话处于事务中空闲（idle in transaction），最长 "
            f"{fmt_seconds(longest)}（pid {rows[0]['pid']}）"
        )
        en = (
            f"{plural(count, 'session')} idle in transaction, longest {fmt_seconds(longest)} "
            f"(pid {rows[0]['pid']})"
        )
    return t.make(
        "db.idle_in_tx",
        severity,
        round(longest, 1),
        threshold,
        value_text=plural(count, "session"),
        zh=zh,
        en=en,
        count=count,
        top=_redacted(rows),
    )


def check_locks(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows, count = d["waiting"], d["waiting_count"]
    longest = max((r["wait_s"] or 0 for r in rows), default=0.0)
    level = t.thresholds.lock_wait_seconds
    if count == 0:
        zh, en = "无锁等待", "no session waiting for a lock"
    else:
        top = rows[0]
        blockers = [b["pid"] for b in top.get("blockers") or []]
        zh = (
            f"{count} 个会话在等待锁，最长 {fmt_seconds(longest)}（pid {top['pid']} 等待 "
            f"{top['mode']} {top.get('relation') or top['locktype']}，被 pid {blockers} 阻塞）"
        )
        en = (
            f"{plural(count, 'session')} waiting for locks, longest {fmt_seconds(longest)} (pid "
            f"{top['pid']} waits for {top['mode']} on {top.get('relation') or top['locktype']}, "
            f"blocked by pids {blockers})"
        )
    return t.make(
        "db.locks",
        classify(level, longest),
        round(longest, 1),
        level,
        unit=" s",
        zh=zh,
        en=en,
        waiting=count,
        top=_redacted(rows),
    )


def check_xid_age(t: Target, d: Data, facts: Facts) -> FindingRecord:
    age, datname = d["xid"]["age"], d["xid"]["datname"]
    pct = 100.0 * age / d["freeze_max_age"]
    pct_level, abs_level = t.thresholds.xid_age_pct, t.thresholds.xid_age
    severity = worst(classify(pct_level, pct), classify(abs_level, age))
    return t.make(
        "db.xid_age",
        severity,
        round(pct, 2),
        f"{_th(pct_level, '%')} of autovacuum_freeze_max_age; absolute {_th(abs_level)}",
        value_text=f"{age:,} ({datname})",
        zh=(
            f"最老事务号年龄 {age:,}（数据库 {datname}），为 autovacuum_freeze_max_age 的 "
            f"{pct:.1f}%"
        ),
        en=(
            f"oldest transaction ID age {age:,} (database {datname}), {pct:.1f}% of "
            "autovacuum_freeze_max_age"
        ),
        age=age,
        datname=datname,
        freeze_max_age=d["freeze_max_age"],
        scope="cluster",
        metrics={"xid_age_pct": pct},
    )


def check_cache_hit(t: Target, d: Data, facts: Facts) -> FindingRecord:
    hit, read = d["blks_hit"] or 0, d["blks_read"] or 0
    level = t.thresholds.cache_hit_pct
    if hit + read < MIN_CACHE_READS:
        return t.make(
            "db.cache_hit",
            "ok",
            None,
            level,
            unit="%",
            value_text="too few reads",
            zh=f"读取块数太少（{hit + read}），暂不评估缓存命中率",
            en=f"too few block reads ({hit + read}) to judge the cache hit ratio",
            hit=hit,
            read=read,
        )
    pct = 100.0 * hit / (hit + read)
    return t.percent(
        "db.cache_hit",
        level,
        pct,
        digits=2,
        zh=f"缓存命中率 {pct:.2f}%（自 {d['stats_reset'] or '统计开始'} 以来）",
        en=f"cache hit ratio {pct:.2f}% (since {d['stats_reset'] or 'statistics start'})",
        hit=hit,
        read=read,
        metrics={"cache_hit_pct": pct},
    )


def _dead_severity(t: Target, row: dict[str, Any]) -> Severity:
    """A table is as bad as the milder of its two conditions (enough
    dead rows AND a large share)."""
    pct = 100.0 * row["dead"] / max(row["live"], 1)
    by_count = classify(t.thresholds.dead_tuples_min, row["dead"])
    by_pct = classify(t.thresholds.dead_tuples_pct, pct)
    return min(by_count, by_pct, key=lambda s: {"ok": 0, "warn": 1, "critical": 2}[s])


def check_dead_tuples(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows = [
        {
            **r,
            "pct": round(100.0 * r["dead"] / max(r["live"], 1), 1),
            "severity": _dead_severity(t, r),
        }
        for r in d["dead"]
    ]
    bad = [r for r in rows if r["severity"] != "ok"]
    severity = worst(*(r["severity"] for r in bad))
    threshold = (
        f"dead tuples {_th(t.thresholds.dead_tuples_min)}; "
        f"and share of live {_th(t.thresholds.dead_tuples_pct, '%')}"
    )
    if not bad:
        total = sum(r["dead"] for r in rows)
        return t.make(
            "db.dead_tuples",
            "ok",
            max((r["dead"] for r in rows), default=0),
            threshold,
            zh=f"死元组正常（共 {total:,}）",
            en=f"dead tuples fine ({total:,} in all)",
            top=rows[:5],
        )
    top = bad[0]
    names = ", ".join(r["name"] for r in bad[:5])
    return t.make(
        "db.dead_tuples",
        severity,
        top["dead"],
        threshold,
        value_text=f"{top['dead']:,} ({top['pct']}%)",
        zh=(
            f"{len(bad)} 张表死元组过多：{top['name']} 有 {top['dead']:,} 个（占活元组 "
            f"{top['pct']}%）"
        ),
        en=f"{plural(len(bad), 'table')} with many dead tuples: {top['name']} has {top['dead']:,} "
        f"({top['pct']}% of live)",
        sugg_zh=f"对以下表执行 VACUUM (ANALYZE)：{names}；并检查 autovacuum 是否被长事务阻塞。",
        sugg_en=f"VACUUM (ANALYZE) {names}; check autovacuum is not blocked by long transactions.",
        tables=bad[:10],
    )


def _age_check(
    t: Target,
    check_id: str,
    rows: list[dict[str, Any]],
    hours_key: str,
    level: Level,
    what: tuple[str, str],
    autovacuum: bool,
) -> FindingRecord:
    """Tables past autovacuum's own trigger point, by hours since their last
    (auto)vacuum/analyze."""
    never = [r["name"] for r in rows if r[hours_key] is None]
    aged = [r for r in rows if r[hours_key] is not None]
    oldest = max((r[hours_key] for r in aged), default=None)
    severity = worst(classify(level, oldest), "warn" if never else "ok")
    if not autovacuum:
        severity = worst(severity, "warn")
    zh_what, en_what = what
    never_zh, never_en = f"从未{zh_what}：{', '.join(never[:5])}", f"never: {', '.join(never[:5])}"
    if severity == "ok":
        zh, en = f"需要{zh_what}的表均已及时处理", f"tables due for {en_what} are handled in time"
    else:
        parts_zh = ([f"最久 {oldest:.1f} 小时"] if oldest is not None else []) + (
            [never_zh] if never else []
        )
        parts_en = ([f"oldest {oldest:.1f} h"] if oldest is not None else []) + (
            [never_en] if never else []
        )
        zh = (
            f"{len(rows)} 张表已达 autovacuum 触发条件但{zh_what}滞后："
            + "，".join(parts_zh)
            + ("；autovacuum 已关闭" if not autovacuum else "")
        )
        en = (
            f"{plural(len(rows), 'table')} past autovacuum's trigger wait for {en_what}: "
            + ", ".join(parts_en)
            + ("; autovacuum is off" if not autovacuum else "")
        )
    value_text = "从未 never" if never and oldest is None else None
    return t.make(
        check_id,
        severity,
        None if oldest is None else round(oldest, 6),
        level,
        unit=" h",
        value_text=value_text or (None if oldest is None else f"{oldest:.1f} h"),
        zh=zh,
        en=en,
        tables=rows[:10],
        never=never[:20],
        autovacuum=autovacuum,
    )


def check_vacuum_age(t: Target, d: Data, facts: Facts) -> FindingRecord:
    return _age_check(
        t,
        "db.vacuum_age",
        d["need_vacuum"],
        "vacuum_h",
        t.thresholds.vacuum_age_hours,
        ("清理", "vacuum"),
        d["autovacuum"],
    )


def check_analyze_age(t: Target, d: Data, facts: Facts) -> FindingRecord:
    return _age_check(
        t,
        "db.analyze_age",
        d["need_analyze"],
        "analyze_h",
        t.thresholds.analyze_age_hours,
        ("统计分析", "analyze"),
        d["autovacuum"],
    )


def check_bloat(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows = d["tables"]
    level = t.thresholds.bloat_bytes
    if not rows:
        return t.make(
            "db.bloat",
            "ok",
            0,
            _th(level, " B"),
            value_text="0 B",
            zh="没有足够大的表（≥ 10 页）需要估算膨胀",
            en="no table large enough (>= 10 pages) to estimate bloat",
        )
    top = rows[0]
    severity = classify(level, top["bloat_bytes"])
    dead_zh = f"，死元组 {top['dead']:,} 个" if top.get("dead") else ""
    dead_en = f", {top['dead']:,} dead tuples" if top.get("dead") else ""
    zh = (
        f"表膨胀估算最大：{top['name']} 浪费约 {fmt_bytes(top['bloat_bytes'])}"
        f"（实际大小 {fmt_bytes(top['real_bytes'])}{dead_zh}；估算值）"
    )
    en = (
        f"largest estimated table bloat: {top['name']} wastes about "
        f"{fmt_bytes(top['bloat_bytes'])} (of {fmt_bytes(top['real_bytes'])} on disk{dead_en}; "
        "an estimate)"
    )
    return t.make(
        "db.bloat",
        severity,
        top["bloat_bytes"],
        _th(level, " B"),
        value_text=f"≈ {fmt_bytes(top['bloat_bytes'])}",
        zh=zh,
        en=en,
        tables=rows,
        estimate=True,
        method="estimate from pg_stats (ioguix) against pg_relation_size, tables >= 10 pages",
    )


def check_index_bloat(t: Target, d: Data, facts: Facts) -> FindingRecord:
    """Flag an index only when both its wasted bytes and its wasted share pass their thresholds."""
    rows, by_bytes, by_pct = d["indexes"], t.thresholds.bloat_bytes, t.thresholds.index_bloat_pct
    threshold = f"wasted {_th(by_bytes, ' B')}; and share {_th(by_pct, '%')}"
    if not rows:
        return t.make(
            "db.index_bloat",
            "ok",
            0,
            threshold,
            value_text="0 B",
            zh="没有足够大的 B-tree 索引（≥ 15 页）需要估算膨胀",
            en="no btree index large enough (>= 15 pages) to estimate bloat",
        )
    for r in rows:
        r["severity"] = min(
            classify(by_bytes, r["bloat_bytes"]),
            classify(by_pct, r["bloat_pct"] or 0),
            key=lambda s: {"ok": 0, "warn": 1, "critical": 2}[s],
        )
    bad = [r for r in rows if r["severity"] != "ok"]
    top = bad[0] if bad else rows[0]
    severity = worst(*(r["severity"] for r in bad))
    zh = (
        f"索引膨胀估算：{top['name']}（表 {top['table_name']}）浪费约 "
        f"{fmt_bytes(top['bloat_bytes'])}，占 {top['bloat_pct']}%（实际大小 "
        f"{fmt_bytes(top['real_bytes'])}；估算值）"
    )
    en = (
        f"estimated index bloat: {top['name']} (table {top['table_name']}) wastes about "
        f"{fmt_bytes(top['bloat_bytes'])}, {top['bloat_pct']}% of "
        f"{fmt_bytes(top['real_bytes'])} (an estimate)"
    )
    names = ", ".join(r["name"] for r in bad[:5])
    return t.make(
        "db.index_bloat",
        severity,
        top["bloat_bytes"],
        threshold,
        value_text=f"≈ {fmt_bytes(top['bloat_bytes'])} ({top['bloat_pct']}%)",
        zh=zh,
        en=en,
        sugg_zh=f"维护窗口内 REINDEX INDEX CONCURRENTLY {names}。" if bad else None,
        sugg_en=f"REINDEX INDEX CONCURRENTLY {names} in the maintenance window." if bad else None,
        indexes=rows,
        estimate=True,
        method="btree estimate from pg_stats (ioguix), indexes >= 15 pages",
    )


def check_size_growth(t: Target, d: Data, facts: Facts) -> FindingRecord:
    size = d["db_size"]
    prev, prev_at = facts.get("previous_size_bytes"), _as_datetime(facts.get("previous_size_at"))
    metrics = {"database_size_bytes": size}
    hours = (
        (t.observed_at - prev_at).total_seconds() / 3600 if prev is not None and prev_at else None
    )
    if hours is None or hours < MIN_GROWTH_INTERVAL_H:
        return t.make(
            "db.size_growth",
            "ok",
            size,
            None,
            value_text=fmt_bytes(size),
            zh=f"数据库大小 {fmt_bytes(size)}（无足够历史，暂不计算增长）",
            en=f"database size {fmt_bytes(size)} (no earlier sample to compute growth)",
            metrics=metrics,
        )
    per_day = (size - prev) / hours * 24
    free = facts.get("disk_free_bytes")
    days = free / per_day if free is not None and per_day > 0 else None
    level = t.thresholds.days_until_full
    severity = classify(level, days)
    zh = f"数据库大小 {fmt_bytes(size)}，日增长 {fmt_bytes(per_day)}" + (
        f"，按此速度约 {days:.1f} 天写满磁盘" if days else ""
    )
    en = f"database size {fmt_bytes(size)}, growing {fmt_bytes(per_day)}/day" + (
        f", disk full in about {days:.1f} days at this rate" if days else ""
    )
    return t.make(
        "db.size_growth",
        severity,
        size,
        f"days until full: {_th(level)}",
        value_text=fmt_bytes(size),
        zh=zh,
        en=en,
        growth_bytes_per_day=per_day,
        previous_size_bytes=prev,
        previous_size_at=prev_at,
        days_until_full=days,
        metrics=metrics,
    )


def _standby_severity(t: Target, lag_s: float | None, lag_bytes: float | None) -> Severity:
    return worst(
        classify(t.thresholds.replication_lag_seconds, lag_s),
        classify(t.thresholds.replication_lag_bytes, lag_bytes),
    )


def _slot_severity(t: Target, slot: dict[str, Any]) -> Severity:
    if slot["active"]:
        return "ok"
    by_age = (
        classify(t.thresholds.inactive_slot_minutes, slot["inactive_min"])
        if slot["inactive_min"]
        else "warn"
    )
    lost = "critical" if slot.get("wal_status") == "lost" else "ok"
    return worst(by_age, classify(t.thresholds.replication_lag_bytes, slot["retained_bytes"]), lost)


def check_replication(t: Target, d: Data, facts: Facts) -> FindingRecord:
    problems: list[tuple[Severity, str, str]] = []
    for s in d["standbys"] or []:
        sev = _standby_severity(t, s["lag_s"], s["lag_bytes"])
        if s["state"] != "streaming":
            sev = worst(sev, "warn")
        problems.append(
            (
                sev,
                f"备库 {s['name']}（{s['client']}）{s['state']}，延迟 {fmt_seconds(s['lag_s'])} / "
                f"{fmt_bytes(s['lag_bytes'])}",
                f"standby {s['name']} ({s['client']}) {s['state']}, lag "
                f"{fmt_seconds(s['lag_s'])} / {fmt_bytes(s['lag_bytes'])}",
            )
        )
    for slot in d["slots"]:
        sev = _slot_severity(t, slot)
        state = "活动" if slot["active"] else "不活动"
        problems.append(
            (
                sev,
                f"复制槽 {slot['name']} {state}，保留 WAL {fmt_bytes(slot['retained_bytes'])}",
                f"slot {slot['name']} {'active' if slot['active'] else 'inactive'}, retains "
                f"{fmt_bytes(slot['retained_bytes'])} of WAL",
            )
        )
    if d["in_recovery"]:
        problems.append(_standby_self(t, d))
    threshold = (
        f"lag {_th(t.thresholds.replication_lag_seconds, ' s')}, "
        f"{_th(t.thresholds.replication_lag_bytes, ' B')}; "
        f"inactive slot {_th(t.thresholds.inactive_slot_minutes, ' min')}"
    )
    if not problems:
        return t.make(
            "db.replication",
            "ok",
            None,
            threshold,
            value_text="not configured",
            zh="未配置复制（无备库、无复制槽）",
            en="no replication configured (no standby, no slot)",
        )
    severity = worst(*(p[0] for p in problems))
    shown = [p for p in problems if p[0] != "ok"] or problems
    return t.make(
        "db.replication",
        severity,
        None,
        threshold,
        value_text=plural(len(problems), "item"),
        zh="；".join(p[1] for p in shown),
        en="; ".join(p[2] for p in shown),
        standbys=d["standbys"],
        slots=d["slots"],
        receiver=d["receiver"],
        replay=d["replay"],
    )


def _standby_self(t: Target, d: Data) -> tuple[Severity, str, str]:
    """This server is a standby: is it receiving, and how far behind is replay?"""
    replay, receiver = d["replay"], d["receiver"] or {}
    delay = 0.0 if replay["caught_up"] else replay["delay_s"]
    sev = _standby_severity(t, delay, replay["lag_bytes"])
    if receiver.get("status") != "streaming":
        sev = worst(sev, "critical")
    return (
        sev,
        f"本库为备库，WAL 接收 {receiver.get('status') or '未运行'}，回放延迟 {fmt_seconds(delay)}",
        f"this server is a standby, WAL receiver {receiver.get('status') or 'not running'}, "
        f"replay delay {fmt_seconds(delay)}",
    )


def check_wal_archive(t: Target, d: Data, facts: Facts) -> FindingRecord:
    level = t.thresholds.wal_ready_files
    if d["archive_mode"] == "off":
        return t.make(
            "db.wal_archive",
            "ok",
            None,
            level,
            value_text="archive_mode off",
            zh="未启用 WAL 归档（archive_mode = off）",
            en="WAL archiving is off (archive_mode = off)",
        )
    ready = d["wal_ready"]
    if ready is None:
        return t.error(
            "db.wal_archive", "no privilege to list pg_wal/archive_status (grant pg_monitor)"
        )
    failed = (d["archiver"] or {}).get("failed_count")
    return t.make(
        "db.wal_archive",
        classify(level, ready),
        ready,
        level,
        value_text=plural(ready, "file"),
        zh=f"待归档 WAL 文件 {ready} 个（累计失败 {failed} 次）",
        en=f"{ready} WAL files waiting to be archived ({failed} failures so far)",
        archiver=d["archiver"],
    )


def check_invalid_indexes(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows = d["invalid_indexes"]
    level = t.thresholds.invalid_indexes
    names = ", ".join(r["name"] for r in rows[:5])
    if not rows:
        return t.make(
            "db.invalid_indexes",
            classify(level, 0),
            0,
            level,
            zh="无无效索引",
            en="no invalid index",
        )
    return t.make(
        "db.invalid_indexes",
        classify(level, len(rows)),
        len(rows),
        level,
        zh=f"{len(rows)} 个无效索引：{names}",
        en=f"{plural(len(rows), 'invalid index', 'invalid indexes')}: {names}",
        sugg_zh=f"确认无正在进行的并发建索引后，DROP INDEX CONCURRENTLY {names} 并重建。",
        sugg_en=(
            f"When no CONCURRENTLY build is running: DROP INDEX CONCURRENTLY {names}, then rebuild."
        ),
        indexes=rows,
    )


def check_sequences(t: Target, d: Data, facts: Facts) -> FindingRecord:
    rows, level = d["top"], t.thresholds.sequence_used_pct
    top = rows[0] if rows else None
    if top is None or top["used_pct"] is None:
        return t.make(
            "db.sequences",
            "ok",
            0,
            level,
            unit="%",
            zh=f"序列充足（共 {d['sequences']} 个）",
            en=f"sequences have room ({d['sequences']} in all)",
        )
    pct = float(top["used_pct"])
    typ = f"（列类型 {top['coltype']}）" if top["coltype"] else ""
    return t.percent(
        "db.sequences",
        level,
        pct,
        digits=2,
        value_text=f"{pct:.2f}%",
        zh=(
            f"使用率最高的序列 {top['name']}{typ} 已用 "
            f"{pct:.2f}%（{top['last_value']:,}/{top['limit_value']:,}）"
        ),
        en=f"fullest sequence {top['name']} ({top['coltype'] or 'no owning column'}) is "
        f"{pct:.2f}% used ({top['last_value']:,}/{top['limit_value']:,})",
        top=rows,
        sequences=d["sequences"],
    )


def check_backup_age(t: Target, d: Data, facts: Facts) -> FindingRecord:
    last = _as_datetime(facts["last_verified_backup_at"])
    level = t.thresholds.backup_age_hours
    if last is None:
        return t.make(
            "db.backup_age",
            "critical",
            None,
            level,
            unit=" h",
            value_text="none",
            zh="没有任何已验证的备份",
            en="no verified backup at all",
        )
    hours = (t.observed_at - last).total_seconds() / 3600
    return t.make(
        "db.backup_age",
        classify(level, hours),
        round(hours, 1),
        level,
        unit=" h",
        value_text=fmt_seconds(hours * 3600),
        zh=f"最近一次已验证备份在 {fmt_seconds(hours * 3600)}前（{t.when(last)}）",
        en=f"last verified backup {fmt_seconds(hours * 3600)} ago ({t.when(last)})",
        last_verified_backup_at=last,
    )


#: (check id, statement that feeds it, evaluator), in report order
CHECKS: list[tuple[str, str, Evaluator]] = [
    ("db.version", "instance", check_version),
    ("db.uptime", "instance", check_uptime),
    ("db.connections", "instance", check_connections),
    ("db.long_queries", "sessions", check_long_queries),
    ("db.long_transactions", "sessions", check_long_transactions),
    ("db.idle_in_tx", "sessions", check_idle_in_tx),
    ("db.locks", "sessions", check_locks),
    ("db.xid_age", "instance", check_xid_age),
    ("db.cache_hit", "instance", check_cache_hit),
    ("db.dead_tuples", "tables", check_dead_tuples),
    ("db.vacuum_age", "tables", check_vacuum_age),
    ("db.analyze_age", "tables", check_analyze_age),
    ("db.bloat", "bloat", check_bloat),
    ("db.index_bloat", "index_bloat", check_index_bloat),
    ("db.size_growth", "instance", check_size_growth),
    ("db.replication", "replication", check_replication),
    ("db.wal_archive", "replication", check_wal_archive),
    ("db.invalid_indexes", "objects", check_invalid_indexes),
    ("db.sequences", "objects", check_sequences),
    ("db.backup_age", "catalog", check_backup_age),
]


def evaluate(
    t: Target, data: dict[str, Data], errors: Mapping[str, BaseException], facts: Facts | None
) -> list[FindingRecord]:
    """Every check against the fetched data; a check whose statement or
    evaluation fails is a check_error."""
    out = []
    for check_id, source, fn in CHECKS:
        if source == "catalog" and (facts is None or "last_verified_backup_at" not in facts):
            continue  # the caller did not look the catalog up: nothing to say about backups
        if source in errors:
            out.append(t.error(check_id, errors[source]))
            continue
        out += t.guarded(
            check_id, lambda fn=fn, source=source: fn(t, data.get(source, {}), facts or {})
        )
    return out


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
