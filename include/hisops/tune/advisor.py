"""索引建议 Index advice proven with hypothetical indexes (hypopg), after Dexter.

For each slow statement (mean ≥ ``slow_mean_ms`` and ≥ ``slow_min_calls`` calls): plan it
generically (``PREPARE`` + ``plan_cache_mode = force_generic_plan``, so the normalised ``$1`` text
is enough), take candidate columns from the plan — columns of sequentially scanned tables used in
their ``Filter`` or in join conditions — and EXPLAIN again with each hypothetical single- and
two-column btree index. An index is suggested only when the plan's total cost drops by at least
``min_drop_pct`` and no existing valid btree index has the same leading columns. Nothing is
created: hypothetical indexes live in the session's memory only.

hypopg must exist as an extension in the database (``CREATE EXTENSION hypopg`` needs a superuser
or, on PostgreSQL 13+, the database owner only if hypopg is marked trusted — it is not), so the
review never creates it: without it the advice section says why and how.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import permutations
from typing import TYPE_CHECKING, Any

from hisops.tune import queries as Q

if TYPE_CHECKING:
    from hisops.tune.statements import Statement, StatementsRead

log = logging.getLogger(__name__)

QUALIFIED_COL = re.compile(r"\b([a-z_][a-z0-9_$]*)\.([a-z_][a-z0-9_$]*)\b")
PARAM = re.compile(r"\$(\d+)")
JOIN_KEYS = ("Hash Cond", "Merge Cond", "Join Filter", "Index Cond", "Recheck Cond")
MAX_QUERIES = 20
MAX_COLUMNS = 4
HYPOPG_RESET = "SELECT hypopg_reset()"  # forget this session's hypothetical indexes
PREFER_SINGLE_WITHIN = 0.10  # a 2-column index must beat the best 1-column one by ≥ 10 points


@dataclass(frozen=True)
class Suggestion:
    """One proven index: where, the statement(s) it helps, cost before/after, time saved per day."""

    table: str
    columns: tuple[str, ...]
    query: str
    queryid: str
    cost_before: float
    cost_after: float
    mean_ms: float
    calls_per_day: float
    plan_before: str = ""
    plan_after: str = ""

    @property
    def drop_pct(self) -> float:
        return 100.0 * (1 - self.cost_after / self.cost_before) if self.cost_before else 0.0

    @property
    def saved_ms_per_day(self) -> float:
        return self.mean_ms * self.calls_per_day * self.drop_pct / 100.0

    @property
    def name(self) -> str:
        base = f"hisops_{self.table.split('.')[-1]}_{'_'.join(self.columns)}_idx"
        return base[:63]

    @property
    def definition(self) -> str:
        schema, table = self.table.split(".", 1)
        cols = ", ".join(f'"{c}"' for c in self.columns)
        return (
            f'CREATE INDEX CONCURRENTLY "{self.name}" ON "{schema}"."{table}" USING btree ({cols})'
        )

    def as_details(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "columns": list(self.columns),
            "query": self.query,
            "queryid": self.queryid,
            "cost_before": round(self.cost_before, 2),
            "cost_after": round(self.cost_after, 2),
            "drop_pct": round(self.drop_pct, 1),
            "mean_ms": round(self.mean_ms, 3),
            "calls_per_day": round(self.calls_per_day, 1),
            "saved_ms_per_day": round(self.saved_ms_per_day, 1),
            "plan_before": self.plan_before,
            "plan_after": self.plan_after,
        }


@dataclass
class Advice:
    available: bool
    reason_zh: str = ""
    reason_en: str = ""
    suggestions: list[Suggestion] = field(default_factory=list)
    #: statements looked at and why nothing was suggested (for the report)
    notes: list[dict[str, Any]] = field(default_factory=list)
    examined: int = 0


def _unavailable(database_id: str) -> Advice:
    return Advice(
        False,
        f"未安装 hypopg，无法验证索引建议：请以超级用户在 {database_id} 执行 CREATE EXTENSION "
        "hypopg（Debian 软件包 postgresql-15-hypopg）",
        f"hypopg is not installed, so no index advice could be proven: as a superuser run "
        f"CREATE EXTENSION hypopg in {database_id} (Debian package postgresql-15-hypopg)",
    )


def explain(cur: Any, query: str, fmt: str = "JSON") -> Any:
    """The generic plan of a normalised statement ($n parameters), without running it."""
    nparams = max((int(n) for n in PARAM.findall(query)), default=0)
    args = f"({', '.join(['NULL'] * nparams)})" if nparams else ""
    cur.execute("SET plan_cache_mode = force_generic_plan")
    cur.execute(f"PREPARE hisops_advice AS {query}")
    try:
        cur.execute(f"EXPLAIN (VERBOSE, FORMAT {fmt}) EXECUTE hisops_advice{args}")
        rows = cur.fetchall()
    finally:
        cur.execute("DEALLOCATE hisops_advice")
    if fmt == "JSON":
        doc = rows[0][0]
        return doc[0]["Plan"] if isinstance(doc, list) else doc
    return "\n".join(r[0] for r in rows)


def _nodes(plan: dict[str, Any]):
    yield plan
    for child in plan.get("Plans", []) or []:
        yield from _nodes(child)


def candidate_columns(plan: dict[str, Any]) -> dict[str, list[str]]:
    """{schema.table: [columns…]} for sequentially scanned tables: Filter columns (equalities
    first), then columns of that table in join conditions anywhere in the plan."""
    scans = {
        n.get("Alias"): f"{n.get('Schema', 'public')}.{n['Relation Name']}"
        for n in _nodes(plan)
        if n.get("Node Type") == "Seq Scan" and n.get("Relation Name")
    }
    found: dict[str, list[str]] = {t: [] for t in scans.values()}

    def add(text: str | None, equality_first: bool) -> None:
        if not text:
            return
        hits = QUALIFIED_COL.findall(text)
        if equality_first:
            eq = set(re.findall(r"\b([a-z_][a-z0-9_$]*\.[a-z_][a-z0-9_$]*)\s*=", text))
            hits.sort(key=lambda h: f"{h[0]}.{h[1]}" not in eq)
        for alias, col in hits:
            table = scans.get(alias)
            if table is not None and col not in found[table]:
                found[table].append(col)

    for n in _nodes(plan):
        if n.get("Node Type") == "Seq Scan":
            add(n.get("Filter"), True)
    for n in _nodes(plan):
        for key in JOIN_KEYS:
            add(n.get(key), False)
    return {t: cols[:MAX_COLUMNS] for t, cols in found.items() if cols}


def covered(table: str, columns: tuple[str, ...], btrees: dict[str, list[tuple[str, ...]]]) -> bool:
    """An existing valid btree index of ``table`` has the same leading columns."""
    return any(tuple(existing[: len(columns)]) == columns for existing in btrees.get(table, []))


def existing_btrees(cur: Any) -> dict[str, list[tuple[str, ...]]]:
    cur.execute(Q.BTREE_KEYS)
    out: dict[str, list[tuple[str, ...]]] = {}
    for schema, table, _index, columns, _unique, partial in cur.fetchall():
        if not partial:
            out.setdefault(f"{schema}.{table}", []).append(tuple(c for c in columns))
    return out


@contextmanager
def _hypothetical_index(cur: Any, table: str, columns: tuple[str, ...]) -> Iterator[None]:
    """A hypopg btree index on ``table (columns)`` for the plans made inside; reset after."""
    schema, name = table.split(".", 1)
    cols = ", ".join(f'"{c}"' for c in columns)
    cur.execute(
        "SELECT indexrelid FROM hypopg_create_index(%s)",
        (f'CREATE INDEX ON "{schema}"."{name}" USING btree ({cols})',),
    )
    try:
        yield
    finally:
        cur.execute(HYPOPG_RESET)


def _hypothetical_cost(cur: Any, query: str, table: str, columns: tuple[str, ...]) -> float:
    with _hypothetical_index(cur, table, columns):
        return float(explain(cur, query)["Total Cost"])


def _best_for(
    cur: Any, s: Statement, btrees: dict[str, list[tuple[str, ...]]]
) -> tuple[float, Any, list]:
    plan = explain(cur, s.query)
    before = float(plan["Total Cost"])
    tried: list[tuple[float, str, tuple[str, ...]]] = []
    for table, cols in candidate_columns(plan).items():
        options = [(c,) for c in cols] + list(permutations(cols, 2))
        for combo in options:
            if not covered(table, combo, btrees):
                tried.append((_hypothetical_cost(cur, s.query, table, combo), table, combo))
    return before, plan, tried


def _pick(
    before: float, tried: list[tuple[float, str, tuple[str, ...]]]
) -> tuple[float, str, tuple] | None:
    if not tried or before <= 0:
        return None
    best = min(tried, key=lambda t: t[0])
    singles = [t for t in tried if len(t[2]) == 1]
    if len(best[2]) == 2 and singles:
        single = min(singles, key=lambda t: t[0])
        if (single[0] - best[0]) / before < PREFER_SINGLE_WITHIN:
            best = single
    return best


def slow_statements(
    read: StatementsRead, slow_mean_ms: float, slow_min_calls: int
) -> list[Statement]:
    """Read-only statements that are slow by pghero's rule (over the review period)."""
    out = [
        s
        for s in read.statements
        if s.d_calls >= slow_min_calls
        and s.mean_ms >= slow_mean_ms
        and s.query.lstrip().lower().startswith(("select", "with"))
    ]
    return sorted(out, key=lambda s: -s.d_total_ms)[:MAX_QUERIES]


def advise(
    conn: Any,
    database_id: str,
    read: StatementsRead,
    *,
    slow_mean_ms: float,
    slow_min_calls: int,
    min_drop_pct: float,
) -> Advice:
    """Proven index suggestions for the slow statements of ``read`` (one per table and columns)."""
    with conn.cursor() as cur:
        cur.execute(Q.EXTENSIONS)
        if "hypopg" not in {r[0] for r in cur.fetchall()}:
            return _unavailable(database_id)
        btrees = existing_btrees(cur)
        advice = Advice(True)
        found: dict[tuple[str, tuple[str, ...]], Suggestion] = {}
        for s in slow_statements(read, slow_mean_ms, slow_min_calls):
            advice.examined += 1
            suggestion = _advise_one(cur, s, read, btrees, min_drop_pct, advice.notes)
            if suggestion is None:
                continue
            key = (suggestion.table, suggestion.columns)
            if key not in found or found[key].saved_ms_per_day < suggestion.saved_ms_per_day:
                found[key] = suggestion
    advice.suggestions = _without_prefixes(list(found.values()))
    return advice


def _advise_one(
    cur: Any,
    s: Statement,
    read: StatementsRead,
    btrees: dict,
    min_drop_pct: float,
    notes: list[dict[str, Any]],
) -> Suggestion | None:
    import psycopg2

    try:
        before, _plan, tried = _best_for(cur, s, btrees)
        best = _pick(before, tried)
        if best is None or 100.0 * (1 - best[0] / before) < min_drop_pct:
            drop = 0.0 if best is None else round(100.0 * (1 - best[0] / before), 1)
            notes.append(
                {
                    "queryid": s.queryid,
                    "query": s.query,
                    "reason_zh": f"无候选索引降低成本达标（最佳 {drop}%）",
                    "reason_en": f"no candidate index cuts the cost enough (best {drop} %)",
                }
            )
            return None
        cost_after, table, columns = best
        plan_before = explain(cur, s.query, "TEXT")
        plan_after = _hypothetical_plan(cur, s.query, table, columns)
    except psycopg2.Error as exc:
        cur.connection.rollback() if not cur.connection.autocommit else None
        _deallocate(cur)
        notes.append(
            {
                "queryid": s.queryid,
                "query": s.query,
                "reason_zh": "无法生成通用执行计划",
                "reason_en": f"cannot plan generically: {str(exc).strip().splitlines()[0][:200]}",
            }
        )
        return None
    return Suggestion(
        table,
        columns,
        s.query,
        s.queryid,
        before,
        cost_after,
        s.mean_ms,
        read.calls_per_day(s),
        plan_before,
        plan_after,
    )


def _deallocate(cur: Any) -> None:
    try:
        cur.execute("DEALLOCATE ALL")
        cur.execute(HYPOPG_RESET)
    except Exception:  # noqa: BLE001 - best effort cleanup of session state
        log.debug("cleanup after a failed plan", exc_info=True)


def _hypothetical_plan(cur: Any, query: str, table: str, columns: tuple[str, ...]) -> str:
    with _hypothetical_index(cur, table, columns):
        return explain(cur, query, "TEXT")


def _without_prefixes(suggestions: list[Suggestion]) -> list[Suggestion]:
    """Drop a suggestion whose columns lead another suggestion on the same table (no duplicates)."""
    keep = []
    for s in suggestions:
        if not any(
            o is not s
            and o.table == s.table
            and len(o.columns) > len(s.columns)
            and o.columns[: len(s.columns)] == s.columns
            for o in suggestions
        ):
            keep.append(s)
    return sorted(keep, key=lambda s: -s.saved_ms_per_day)
