"""pg_stat_statements: the top queries of one database, what changed since the previous review.

pg_stat_statements is never reset here (other tools read it too): each review stores the
cumulative counters of the top statements and the delta to the previous review's counters; a
statistics reset (stats_reset moved, or counters went down) starts the deltas afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hisops.tune import queries as Q

if TYPE_CHECKING:
    from hisops.catalog.records import StatementSnapshot

EXTENSION = "pg_stat_statements"
SETTING = "shared_preload_libraries = 'pg_stat_statements'"
TOP_LIMIT = 200
REGRESSION_FACTOR = 1.5


@dataclass(frozen=True)
class Statement:
    queryid: str
    query: str
    calls: int
    total_ms: float
    rows: int
    #: since the previous review (or since the statistics reset)
    d_calls: int = 0
    d_total_ms: float = 0.0
    previous_mean_ms: float | None = None

    @property
    def mean_ms(self) -> float:
        return self.d_total_ms / self.d_calls if self.d_calls else 0.0

    @property
    def regressed(self) -> bool:
        return bool(
            self.previous_mean_ms
            and self.d_calls
            and self.mean_ms >= REGRESSION_FACTOR * self.previous_mean_ms
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "queryid": self.queryid,
            "query": self.query,
            "calls": self.calls,
            "total_ms": round(self.total_ms, 3),
            "rows": self.rows,
            "d_calls": self.d_calls,
            "d_total_ms": round(self.d_total_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "previous_mean_ms": self.previous_mean_ms,
        }


@dataclass
class StatementsRead:
    """What the review learnt from pg_stat_statements (``missing`` = why it could not)."""

    statements: list[Statement] = field(default_factory=list)
    stats_reset: datetime | None = None
    #: seconds the deltas cover (since previous review or stats reset)
    period_s: float = 0.0
    missing_zh: str | None = None
    missing_en: str | None = None

    @property
    def available(self) -> bool:
        return self.missing_en is None

    def top(self, key: str, n: int = 10) -> list[Statement]:
        sort = {
            "total": lambda s: s.d_total_ms,
            "mean": lambda s: s.mean_ms,
            "calls": lambda s: s.d_calls,
        }[key]
        return sorted((s for s in self.statements if s.d_calls), key=sort, reverse=True)[:n]

    def regressions(self) -> list[Statement]:
        return [s for s in self.statements if s.regressed]

    def calls_per_day(self, s: Statement) -> float:
        return s.d_calls * 86400.0 / max(self.period_s, 3600.0)


def _missing(db: str, preloaded: str, installed: bool) -> tuple[str, str]:
    if "pg_stat_statements" not in preloaded:
        return (
            f"pg_stat_statements 未加载：在 postgresql.conf 设置 {SETTING}，重启后在 {db} 执行 "
            "CREATE EXTENSION pg_stat_statements",
            f"pg_stat_statements is not loaded: set {SETTING} in postgresql.conf, restart, then "
            f"run CREATE EXTENSION pg_stat_statements in {db}",
        )
    assert not installed
    return (
        f"{db} 未创建扩展：执行 CREATE EXTENSION pg_stat_statements",
        f"the extension is not created in {db}: run CREATE EXTENSION pg_stat_statements",
    )


def read_statements(
    conn: Any, database_id: str, previous: StatementSnapshot | None, now: datetime | None = None
) -> StatementsRead:
    """Top statements with deltas against ``previous`` (the last stored snapshot)."""
    now = now or datetime.now(UTC)
    with conn.cursor() as cur:
        cur.execute(Q.EXTENSIONS)
        installed = EXTENSION in {r[0] for r in cur.fetchall()}
        cur.execute(Q.PRELOADED)
        preloaded = cur.fetchone()[0] or ""
        if not installed or EXTENSION not in preloaded:
            zh, en = _missing(database_id, preloaded, installed)
            return StatementsRead(missing_zh=zh, missing_en=en)
        cur.execute(Q.STATEMENTS_RESET)
        stats_reset = cur.fetchone()[0]
        cur.execute(Q.STATEMENTS, {"limit": TOP_LIMIT})
        rows = cur.fetchall()
    return _with_deltas(rows, stats_reset, previous, now)


def _with_deltas(
    rows: list[tuple],
    stats_reset: datetime | None,
    previous: StatementSnapshot | None,
    now: datetime,
) -> StatementsRead:
    usable = previous is not None and previous.stats_reset == stats_reset
    before = {s["queryid"]: s for s in previous.statements} if usable and previous else {}
    start = previous.taken_at if usable and previous else (stats_reset or now)
    out = []
    for queryid, query, calls, total_ms, nrows in rows:
        old = before.get(queryid)
        d_calls, d_total = calls, total_ms
        prev_mean = None
        if old is not None and old["calls"] <= calls:
            d_calls, d_total = calls - old["calls"], total_ms - old["total_ms"]
            prev_mean = old.get("mean_ms") or None
        out.append(Statement(queryid, query, calls, total_ms, nrows, d_calls, d_total, prev_mean))
    return StatementsRead(out, stats_reset, max((now - start).total_seconds(), 0.0))
