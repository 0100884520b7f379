"""演练检查计划 The Great Expectations suite of a restore drill, planned from the manifest and
the inventory.

Plain data (no GX import): ``gx_runner`` turns each :class:`PlannedExpectation` into a GX
expectation. Per table of the manifest's schema:

- ``expect_table_columns_to_match_ordered_list``   columns (and their order) as in the backup;
- ``expect_table_row_count_to_equal``               the manifest's exact count (estimates are
  noted, not compared);
- primary key unique, foreign keys without orphans (see *modes* below);
- ``expect_column_values_to_not_be_null``           the inventory's ``critical_columns``;
- the inventory's per-table ``expectations``.

Modes for keys (all checks run as SQL inside PostgreSQL; nothing is pulled into Python):

- ``deep``: ``expect_column_values_to_be_unique`` / ``expect_compound_columns_to_be_unique`` and an
  anti-join per foreign key, always — a full pass over every table per key;
- ``fast`` (default): the same questions as ``unexpected_rows_expectation`` queries that first ask
  the restored catalog whether PostgreSQL itself already guarantees the answer — a valid primary key
  index (built by pg_restore, which rejects duplicates) or a *validated* foreign key constraint
  (pg_restore's ADD CONSTRAINT ran the anti-join). Then the data scan is skipped by the planner
  (one-time filter); otherwise — constraint missing, NOT VALID, or index invalid — the full
  duplicate / orphan scan runs. Same verdict, without paying twice for what pg_restore proved.

Plus one database-level check: the set of tables equals the manifest's (missing and unexpected
tables are listed by name). Everything the inventory asks for but the backup lacks (a critical table
or column) is a planning *problem*: the drill fails on it, naming table and column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

CheckKind = Literal[
    "tables", "row_count", "columns", "primary_key", "not_null", "foreign_key", "inventory"
]
Mode = Literal["fast", "deep"]
MODES: tuple[Mode, ...] = ("fast", "deep")

USER_TABLES_SQL = """SELECT n.nspname || '.' || c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')"""
#: the one-row batch the database-level checks run against (GX wants a batch for every check)
DATABASE_BATCH_SQL = "SELECT 1 AS database_level"


@dataclass(frozen=True)
class PlannedExpectation:
    """One GX expectation: its type name (snake_case, as in the inventory), kwargs and what it
    proves."""

    kind: CheckKind
    type: str
    kwargs: Mapping[str, Any]
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class TablePlan:
    schema: str
    name: str
    expectations: tuple[PlannedExpectation, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class SuitePlan:
    database_id: str
    backup_id: int
    tables: tuple[TablePlan, ...]
    database: tuple[PlannedExpectation, ...]
    problems: tuple[str, ...] = ()  # inventory asks for what the backup lacks → the drill fails
    notes: tuple[str, ...] = ()  # e.g. row counts that are estimates (not compared)
    mode: Mode = "fast"

    @property
    def expectation_count(self) -> int:
        return len(self.database) + sum(len(t.expectations) for t in self.tables)

    def table(self, qualified: str) -> TablePlan | None:
        return next((t for t in self.tables if t.qualified == qualified), None)


@dataclass
class _Inventory:
    critical_tables: Sequence[str] = ()
    critical_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    expectations: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)


# --- SQL text helpers --------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """PostgreSQL identifier quoting; braces doubled because GX formats queries with str.format."""
    return '"' + name.replace('"', '""').replace("{", "{{").replace("}", "}}") + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''").replace("{", "{{").replace("}", "}}") + "'"


def qualified_ident(qualified: str) -> str:
    schema, _, name = qualified.partition(".")
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _attnums(table: str, columns: Sequence[str]) -> str:
    """SQL: the attribute numbers of ``columns`` of ``table``, in order (an int2[] like conkey)."""
    names = ", ".join(quote_literal(c) for c in columns)
    return (
        f"ARRAY(SELECT a.attnum FROM unnest(ARRAY[{names}]::name[]) WITH ORDINALITY AS u(n, o) "
        f"JOIN pg_attribute a ON a.attrelid = to_regclass({quote_literal(qualified_ident(table))}) "
        "AND a.attname = u.n ORDER BY u.o)"
    )


def fk_guaranteed(
    table: str, columns: Sequence[str], ref_table: str, ref_columns: Sequence[str]
) -> str:
    """SQL condition: a validated foreign key constraint with exactly these columns exists."""
    return (
        "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contype = 'f' AND k.convalidated "
        f"AND k.conrelid = to_regclass({quote_literal(qualified_ident(table))}) "
        f"AND k.confrelid = to_regclass({quote_literal(qualified_ident(ref_table))}) "
        f"AND k.conkey = {_attnums(table, columns)} "
        f"AND k.confkey = {_attnums(ref_table, ref_columns)})"
    )


def key_guaranteed(table: str, columns: Sequence[str]) -> str:
    """SQL condition: a primary key / unique constraint on exactly these columns with a valid
    index."""
    return (
        "EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_index i ON i.indexrelid = k.conindid "
        "WHERE k.contype IN ('p', 'u') AND i.indisunique AND i.indisvalid AND i.indpred IS NULL "
        f"AND k.conrelid = to_regclass({quote_literal(qualified_ident(table))}) "
        f"AND k.conkey = {_attnums(table, columns)})"
    )


# GX substitutes {batch} in two shapes: "(subquery)" when the query contains a JOIN, else
# "(subquery) AS subselect". Every query here contains a JOIN, so "{batch} AS c" is always valid.
BATCH = "{batch} AS c"


def orphan_query(
    columns: Sequence[str], ref_table: str, ref_columns: Sequence[str], unless: str | None = None
) -> str:
    """Rows of ``{batch}`` whose foreign key points nowhere (MATCH SIMPLE: a NULL part is no
    reference).

    An anti-join (LEFT JOIN … IS NULL). ``unless``: an SQL condition that, when true, proves there
    are none — the planner then skips the scan (one-time filter)."""
    cols = ", ".join(f"c.{quote_ident(c)}" for c in columns)
    not_null = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in columns)
    join = " AND ".join(
        f"p.{quote_ident(r)} = c.{quote_ident(c)}"
        for c, r in zip(columns, ref_columns, strict=True)
    )
    skip = f"NOT {unless} AND " if unless else ""
    return (
        f"SELECT {cols} FROM {BATCH} LEFT JOIN {qualified_ident(ref_table)} AS p ON {join} "
        f"WHERE {skip}p.{quote_ident(ref_columns[0])} IS NULL AND {not_null}"
    )


def duplicate_query(columns: Sequence[str], unless: str) -> str:
    """Key values of ``{batch}`` present more than once (with their count), unless ``unless``
    proves none."""
    cols = ", ".join(f"c.{quote_ident(c)}" for c in columns)
    return (
        f"SELECT {cols}, count(*) AS copies FROM {BATCH} "
        f"CROSS JOIN (SELECT NOT {unless} AS needed) AS g "
        f"WHERE g.needed GROUP BY {cols} HAVING count(*) > 1"
    )


def table_set_query(expected: Iterable[str]) -> str:
    """Tables missing from the restored database, and tables it has that the backup did not."""
    values = ", ".join(f"({quote_literal(t)})" for t in sorted(expected)) or "(NULL)"
    return (
        "SELECT d.table_name, d.problem FROM ("
        f"WITH expected(name) AS (VALUES {values}), "
        f"actual AS ({USER_TABLES_SQL.replace('{', '{{')}) "
        "SELECT e.name AS table_name, 'missing 缺失' AS problem FROM expected e "
        "WHERE e.name IS NOT NULL AND e.name NOT IN (SELECT name FROM actual) "
        "UNION ALL SELECT a.name, 'unexpected 多余' FROM actual a "
        "WHERE a.name NOT IN (SELECT name FROM expected WHERE name IS NOT NULL)"
        ") AS d CROSS JOIN (SELECT 1 FROM {batch} AS c LIMIT 1) AS b"
    )


# --- planning ----------------------------------------------------------------------------------


def _columns_check(qualified: str, columns: Sequence[Sequence[Any]]) -> PlannedExpectation:
    names = [c[0] for c in columns]
    return PlannedExpectation(
        "columns",
        "expect_table_columns_to_match_ordered_list",
        {"column_list": names},
        f"{qualified} 列与备份一致",
        f"{qualified}: columns equal the backup's",
    )


def _row_count_check(qualified: str, rows: int) -> PlannedExpectation:
    return PlannedExpectation(
        "row_count",
        "expect_table_row_count_to_equal",
        {"value": rows},
        f"{qualified} 行数 = {rows:,}",
        f"{qualified}: row count = {rows:,}",
    )


def _primary_key_check(qualified: str, key: Sequence[str], mode: Mode) -> PlannedExpectation:
    cols = ", ".join(key)
    zh, en = f"{qualified} 主键 ({cols}) 唯一", f"{qualified}: primary key ({cols}) unique"
    if mode == "fast":
        query = duplicate_query(key, unless=key_guaranteed(qualified, key))
        return PlannedExpectation(
            "primary_key",
            "unexpected_rows_expectation",
            {"unexpected_rows_query": query, "description": f"主键唯一 {en}"},
            zh,
            en,
        )
    if len(key) == 1:
        return PlannedExpectation(
            "primary_key", "expect_column_values_to_be_unique", {"column": key[0]}, zh, en
        )
    return PlannedExpectation(
        "primary_key", "expect_compound_columns_to_be_unique", {"column_list": list(key)}, zh, en
    )


def _not_null_check(qualified: str, column: str) -> PlannedExpectation:
    return PlannedExpectation(
        "not_null",
        "expect_column_values_to_not_be_null",
        {"column": column},
        f"{qualified}.{column} 关键列非空",
        f"{qualified}.{column}: critical column not null",
    )


def _foreign_key_check(qualified: str, fk: Any, mode: Mode) -> PlannedExpectation:
    cols, refs = ", ".join(fk.columns), ", ".join(fk.ref_columns)
    where = f"{qualified}({cols}) → {fk.ref_table}({refs})"
    unless = (
        fk_guaranteed(qualified, fk.columns, fk.ref_table, fk.ref_columns)
        if mode == "fast"
        else None
    )
    return PlannedExpectation(
        "foreign_key",
        "unexpected_rows_expectation",
        {
            "unexpected_rows_query": orphan_query(fk.columns, fk.ref_table, fk.ref_columns, unless),
            "description": f"外键无孤儿行 no orphans: {where}",
        },
        f"外键无孤儿行 {where}",
        f"foreign key without orphans: {where}",
    )


def _inventory_check(qualified: str, spec: Mapping[str, Any]) -> PlannedExpectation:
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    return PlannedExpectation(
        "inventory",
        str(spec["type"]),
        kwargs,
        f"{qualified} 清单检查 {spec['type']}",
        f"{qualified}: inventory check {spec['type']}",
    )


def resolve_table(name: str, tables: Iterable[str]) -> str | None:
    """Inventory table name ('patient' or 'schema.patient') → the manifest's 'schema.table'."""
    known = list(tables)
    if "." in name:
        return name if name in known else None
    matches = [t for t in known if t.split(".", 1)[1] == name]
    if len(matches) > 1 and f"public.{name}" in matches:
        return f"public.{name}"
    return matches[0] if len(matches) == 1 else None


def _inventory_of(database: Any) -> _Inventory:
    if database is None:
        return _Inventory()
    return _Inventory(
        critical_tables=list(database.critical_tables),
        critical_columns=dict(database.critical_columns),
        expectations=dict(database.expectations),
    )


def _table_expectations(
    qualified: str, schema: Any, count: Any, mode: Mode
) -> tuple[list[PlannedExpectation], list[str]]:
    checks, notes = [_columns_check(qualified, schema.columns)], []
    if count is not None and count.exact:
        checks.append(_row_count_check(qualified, count.rows))
    elif count is not None:
        notes.append(
            f"{qualified}: 行数为估计值，不比较 "
            f"row count is an estimate ({count.rows:,}), not compared"
        )
    if schema.primary_key:
        checks.append(_primary_key_check(qualified, schema.primary_key, mode))
    checks += [_foreign_key_check(qualified, fk, mode) for fk in schema.foreign_keys]
    return checks, notes


def _inventory_expectations(
    inv: _Inventory, tables: Mapping[str, Any]
) -> tuple[dict[str, list[PlannedExpectation]], list[str]]:
    extra: dict[str, list[PlannedExpectation]] = {}
    problems: list[str] = []
    for name in inv.critical_tables:
        if resolve_table(name, tables) is None:
            problems.append(f"关键表不在备份中 critical table missing from the backup: {name}")
    for name, columns in inv.critical_columns.items():
        qualified = resolve_table(name, tables)
        if qualified is None:
            problems.append(f"关键表不在备份中 critical table missing from the backup: {name}")
            continue
        present = {c[0] for c in tables[qualified].columns}
        for column in columns:
            if column in present:
                extra.setdefault(qualified, []).append(_not_null_check(qualified, column))
            else:
                problems.append(
                    "关键列不在备份中 critical column missing from the backup: "
                    f"{qualified}.{column}"
                )
    for name, specs in inv.expectations.items():
        qualified = resolve_table(name, tables)
        if qualified is None:
            problems.append(
                "清单检查的表不在备份中 "
                f"table of inventory expectations missing from the backup: {name}"
            )
            continue
        extra.setdefault(qualified, []).extend(_inventory_check(qualified, s) for s in specs)
    return extra, problems


def build_plan(manifest: Any, database: Any = None, mode: Mode = "fast") -> SuitePlan:
    """The drill's suite for one backup (``database``: the inventory's entry, optional)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if manifest.schema_ is None:
        raise ValueError(
            f"备份 {manifest.backup_id} 的清单没有表结构 manifest has no schema section"
        )
    tables = manifest.schema_.tables
    counts = {t.qualified: t for t in manifest.tables}
    extra, problems = _inventory_expectations(_inventory_of(database), tables)
    plans, notes = [], []
    for qualified in sorted(tables):
        checks, table_notes = _table_expectations(
            qualified, tables[qualified], counts.get(qualified), mode
        )
        schema, _, name = qualified.partition(".")
        plans.append(TablePlan(schema, name, tuple(checks + extra.get(qualified, []))))
        notes += table_notes
    table_set = PlannedExpectation(
        "tables",
        "unexpected_rows_expectation",
        {
            "unexpected_rows_query": table_set_query(tables),
            "description": "表集合与备份一致 the set of tables equals the backup's",
        },
        "表集合与备份一致",
        "the set of tables equals the backup's",
    )
    return SuitePlan(
        database_id=manifest.database_id or "",
        backup_id=manifest.backup_id,
        tables=tuple(plans),
        database=(table_set,),
        problems=tuple(problems),
        notes=tuple(notes),
        mode=mode,
    )
