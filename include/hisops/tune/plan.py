"""维护计划 What db_maintenance would do to one database, decided from
its statistics and the catalog.

Step kinds (the inventory's ``tuning.pre_approved`` names them): ``drop_invalid`` (leftover
``_ccnew``/``_ccold`` of an interrupted REINDEX CONCURRENTLY), ``drop_index`` and ``create_index``
(approved proposals), ``reindex`` (bloated or amcheck-failing btree, other invalid indexes),
``vacuum_analyze`` (dead tuples past thresholds), ``analyze`` (stale statistics). Every statement is
one of five shapes, all online (CONCURRENTLY or VACUUM/ANALYZE); :func:`assert_safe` refuses
anything else — table data is never deleted or truncated.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hisops.tune import health
from hisops.tune.proposals import CREATE_INDEX, DROP_INDEX

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Tuning

ORDER = ("drop_invalid", "drop_index", "create_index", "reindex", "vacuum_analyze", "analyze")
_IDENT = r'"[^"]+"\."[^"]+"'
SAFE_SQL = (
    re.compile(rf"^DROP INDEX CONCURRENTLY IF EXISTS {_IDENT}$"),
    re.compile(rf"^DROP INDEX CONCURRENTLY {_IDENT}$"),
    re.compile(
        rf'^CREATE INDEX CONCURRENTLY "[^"]+" ON {_IDENT} USING btree \("[^"]+"(, "[^"]+")*\)$'
    ),
    re.compile(rf"^REINDEX INDEX CONCURRENTLY {_IDENT}$"),
    re.compile(rf"^VACUUM \(ANALYZE\) {_IDENT}$"),
    re.compile(rf"^ANALYZE {_IDENT}$"),
)


class UnsafeStatement(ValueError):
    """A maintenance statement outside the five allowed shapes (never executed)."""


def assert_safe(sql: str) -> str:
    if not any(p.match(sql) for p in SAFE_SQL):
        raise UnsafeStatement(f"refused, not a maintenance statement: {sql[:200]!r}")
    return sql


def quoted(qualified: str) -> str:
    schema, name = qualified.split(".", 1)
    return f'"{schema}"."{name}"'


@dataclass(frozen=True)
class Step:
    kind: str
    object: str
    table: str
    sql: str
    reason_zh: str
    reason_en: str
    proposal_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    database_id: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database_id": self.database_id,
            "steps": [s.as_dict() for s in self.steps],
            "notes": list(self.notes),
        }

    def text(self) -> str:
        """The plan as a person reads it (task log, approval form)."""
        if not self.steps:
            return f"{self.database_id}: 无需维护 nothing to do"
        lines = [f"{self.database_id}: {len(self.steps)} 步 steps"]
        lines += [
            f"{i}. [{s.kind}] {s.sql} — {s.reason_zh} ({s.reason_en})"
            for i, s in enumerate(self.steps, 1)
        ]
        return "\n".join(lines)


def _reindex(i: health.IndexInfo, zh: str, en: str) -> Step:
    return Step(
        "reindex", i.index, i.table, f"REINDEX INDEX CONCURRENTLY {quoted(i.index)}", zh, en
    )


def _index_steps(h: health.Health, cfg: Tuning, failing: set[str]) -> list[Step]:
    steps = []
    for i in h.indexes:
        if i.leftover:
            steps.append(
                Step(
                    "drop_invalid",
                    i.index,
                    i.table,
                    f"DROP INDEX CONCURRENTLY IF EXISTS {quoted(i.index)}",
                    "删除中断的 REINDEX CONCURRENTLY 留下的无效索引",
                    "drop the invalid leftover of an interrupted REINDEX CONCURRENTLY",
                )
            )
        elif not i.valid:
            steps.append(_reindex(i, "重建无效索引", "rebuild an invalid index"))
        elif i.index in failing:
            steps.append(_reindex(i, "amcheck 检查失败，重建", "amcheck failed: rebuild"))
        elif i.bloat_pct >= cfg.reindex_bloat_pct and i.bytes >= cfg.reindex_min_mb * health.MB:
            steps.append(
                _reindex(
                    i,
                    f"索引膨胀约 {i.bloat_pct:.0f}%（阈值 {cfg.reindex_bloat_pct:g}%）",
                    f"estimated bloat {i.bloat_pct:.0f} % (threshold {cfg.reindex_bloat_pct:g} %)",
                )
            )
    return steps


def _table_steps(h: health.Health, cfg: Tuning) -> list[Step]:
    steps = []
    for t in h.tables:
        if t.dead >= cfg.vacuum_min_dead and t.dead_pct >= cfg.vacuum_dead_pct:
            steps.append(
                Step(
                    "vacuum_analyze",
                    t.table,
                    t.table,
                    f"VACUUM (ANALYZE) {quoted(t.table)}",
                    f"死元组 {t.dead:,}（{t.dead_pct:.0f}%）",
                    f"{t.dead:,} dead tuples ({t.dead_pct:.0f} %)",
                )
            )
        elif t.tuples > 0 and (
            t.last_analyze is None or t.modified >= cfg.analyze_changed_pct / 100 * t.tuples
        ):
            steps.append(
                Step(
                    "analyze",
                    t.table,
                    t.table,
                    f"ANALYZE {quoted(t.table)}",
                    f"统计信息过期：{t.modified:,} 行变更",
                    f"stale statistics: {t.modified:,} rows changed",
                )
            )
    return steps


def _proposal_steps(repo: CatalogRepository, database_id: str, h: health.Health) -> list[Step]:
    existing = {i.index for i in h.indexes}
    steps = []
    for p in repo.proposals(database_id, states=("approved",)):
        table = p.details.get("table", "")
        if p.kind == CREATE_INDEX and f"{table.split('.')[0]}.{p.object_name}" not in existing:
            steps.append(
                Step(
                    "create_index",
                    f"{table.split('.')[0]}.{p.object_name}",
                    table,
                    p.definition,
                    f"已批准的提案 #{p.id}（成本下降 {p.details.get('drop_pct')}%）",
                    f"approved proposal #{p.id} (cost -{p.details.get('drop_pct')} %)",
                    p.id,
                )
            )
        elif p.kind == DROP_INDEX and p.object_name in existing:
            steps.append(
                Step(
                    "drop_index",
                    p.object_name,
                    table,
                    p.definition,
                    f"已批准的提案 #{p.id}（{p.details.get('reason')}）",
                    f"approved proposal #{p.id} ({p.details.get('reason')})",
                    p.id,
                )
            )
    return steps


def amcheck_failures(conn: Any, indexes: list[health.IndexInfo]) -> tuple[set[str], str | None]:
    """bt_index_check of every valid btree index (amcheck installed); (failing names, note)."""
    import psycopg2

    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")
        if cur.fetchone() is None:
            return (
                set(),
                "amcheck 未安装，未检查索引结构 amcheck not installed: index structure not checked",
            )
        failing = set()
        for i in indexes:
            if i.method == "btree" and i.valid:
                try:
                    cur.execute("SELECT bt_index_check(%s::regclass)", (quoted(i.index),))
                except psycopg2.Error:
                    failing.add(i.index)
    return failing, None


def make_plan(
    conn: Any,
    repo: CatalogRepository,
    database_id: str,
    cfg: Tuning,
    kinds: list[str] | None = None,
) -> Plan:
    """The ordered steps (one object each) for one database; ``kinds`` limits the step kinds."""
    h = health.read_and_assess(conn, cfg)
    failing, note = amcheck_failures(conn, h.indexes)
    plan = Plan(database_id, notes=[note] if note else [])
    steps = (
        _index_steps(h, cfg, failing) + _proposal_steps(repo, database_id, h) + _table_steps(h, cfg)
    )
    dropped = {s.object for s in steps if s.kind == "drop_index"}
    steps = [s for s in steps if not (s.kind == "reindex" and s.object in dropped)]
    wanted = set(kinds or ORDER)
    plan.steps = sorted((s for s in steps if s.kind in wanted), key=lambda s: ORDER.index(s.kind))
    for s in plan.steps:
        assert_safe(s.sql)
    return plan
