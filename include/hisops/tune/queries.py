"""The SQL performance_review and db_maintenance read from the target database (read-only)."""

from __future__ import annotations

TAG = "/* hisops:tune */ "

STATEMENTS = (
    TAG
    + """
SELECT s.queryid::text AS queryid, left(s.query, 4000) AS query, s.calls::bigint AS calls,
       s.total_exec_time::float8 AS total_ms, s.rows::bigint AS rows
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.toplevel AND s.query NOT LIKE '%%hisops:%%' AND s.calls > 0
ORDER BY s.total_exec_time DESC LIMIT %(limit)s"""
)

STATEMENTS_RESET = TAG + "SELECT stats_reset FROM pg_stat_statements_info"

EXTENSIONS = TAG + "SELECT extname FROM pg_extension"

PRELOADED = TAG + "SELECT current_setting('shared_preload_libraries')"

# valid btree indexes: table, index, column names in key order (expressions as NULL)
BTREE_KEYS = (
    TAG
    + """
SELECT n.nspname AS schema, t.relname AS table, i.relname AS index,
       array(SELECT a.attname FROM unnest(x.indkey[0:x.indnkeyatts - 1])
         WITH ORDINALITY k(attnum, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       x.indisunique OR x.indisprimary AS is_unique, x.indpred IS NOT NULL AS partial
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = i.relam
WHERE am.amname = 'btree' AND x.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""
)

TABLE_COLUMNS = (
    TAG
    + """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped"""
)

INDEXES = (
    TAG
    + """
SELECT n.nspname || '.' || i.relname AS index, n.nspname || '.' || t.relname AS table,
       pg_relation_size(i.oid)::bigint AS bytes, coalesce(s.idx_scan, 0)::bigint AS idx_scan,
       x.indisvalid AS valid, x.indisunique AS is_unique, x.indisprimary AS is_primary,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) AS backs_constraint,
       am.amname AS method, x.indpred IS NOT NULL AS partial,
       array(SELECT coalesce(a.attname, '(expr)')
             FROM unnest(x.indkey[0:x.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       pg_get_indexdef(i.oid) AS definition,
       coalesce(ts.n_tup_ins + ts.n_tup_del + ts.n_tup_upd - ts.n_tup_hot_upd, 0)::bigint AS writes,
       i.relpages::bigint AS pages, greatest(i.reltuples, 0)::float8 AS tuples,
       (SELECT sum(coalesce(st.avg_width, 8)) FROM unnest(x.indkey) k(attnum)
          JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
          LEFT JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = t.relname
                               AND st.attname = a.attname AND NOT st.inherited)::float8 AS key_width
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = i.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.oid
LEFT JOIN pg_stat_user_tables ts ON ts.relid = t.oid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY n.nspname, t.relname, i.relname"""
)

TABLES = (
    TAG
    + """
SELECT s.schemaname || '.' || s.relname AS table, pg_table_size(s.relid)::bigint AS bytes,
       c.relpages::bigint AS pages, greatest(c.reltuples, 0)::float8 AS tuples,
       s.n_live_tup::bigint AS live, s.n_dead_tup::bigint AS dead,
       s.n_mod_since_analyze::bigint AS modified,
       s.seq_scan::bigint AS seq_scan, s.seq_tup_read::bigint AS seq_tup_read,
       coalesce(s.idx_scan, 0)::bigint AS idx_scan,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       current_setting('autovacuum_vacuum_threshold')::float8
         + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0)
           AS av_threshold,
       (SELECT 24 + sum(coalesce(st.avg_width, 8)) FROM pg_attribute a
          LEFT JOIN pg_stats st ON st.schemaname = s.schemaname AND st.tablename = s.relname
                               AND st.attname = a.attname AND NOT st.inherited
         WHERE a.attrelid = s.relid AND a.attnum > 0 AND NOT a.attisdropped)::float8 AS row_width,
       coalesce(substring(array_to_string(c.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 100)
         AS ff
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
ORDER BY s.schemaname, s.relname"""
)
