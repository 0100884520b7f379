"""Index and table health from the statistics views: unused, redundant and invalid indexes, bloat
estimates (no extension, no scan: pg_class + pg_stats, after ioguix's estimates), autovacuum lag and
sequential scans on big tables. One read of two catalog queries; the rest is arithmetic here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hisops.tune import queries as Q

if TYPE_CHECKING:
    from hisops.inventory.models import Tuning

BLOCK = 8192
MB = 1024 * 1024
INVALID_LEFTOVER_SUFFIXES = ("_ccnew", "_ccold")


def _maxalign(n: float) -> float:
    return math.ceil(n / 8) * 8


@dataclass(frozen=True)
class IndexInfo:
    index: str
    table: str
    bytes: int
    idx_scan: int
    valid: bool
    is_unique: bool
    is_primary: bool
    backs_constraint: bool
    method: str
    partial: bool
    columns: list[str]
    definition: str
    writes: int
    pages: int
    tuples: float
    key_width: float | None

    @property
    def bloat_bytes(self) -> int:
        """Estimated wasted bytes of a btree index (leaf fill 90 %); 0 when not estimable."""
        if self.method != "btree" or self.pages < 15 or self.key_width is None:
            return 0
        per_tuple = _maxalign(8 + self.key_width) + 4
        expected = math.ceil(self.tuples * per_tuple / ((BLOCK - 24 - 16) * 0.9)) + 1
        return max(self.pages - expected, 0) * BLOCK

    @property
    def bloat_pct(self) -> float:
        return 100.0 * self.bloat_bytes / (self.pages * BLOCK) if self.pages else 0.0

    @property
    def leftover(self) -> bool:
        """An invalid leftover of an interrupted REINDEX CONCURRENTLY."""
        return not self.valid and self.index.endswith(INVALID_LEFTOVER_SUFFIXES)


@dataclass(frozen=True)
class TableInfo:
    table: str
    bytes: int
    pages: int
    tuples: float
    live: int
    dead: int
    modified: int
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    last_vacuum: Any
    last_analyze: Any
    av_threshold: float
    row_width: float | None
    ff: int

    @property
    def bloat_bytes(self) -> int:
        if self.pages < 10 or self.row_width is None:
            return 0
        expected = math.ceil(
            self.tuples * (_maxalign(self.row_width) + 4) / ((BLOCK - 24) * self.ff / 100)
        )
        return max(self.pages - expected, 0) * BLOCK

    @property
    def bloat_pct(self) -> float:
        return 100.0 * self.bloat_bytes / (self.pages * BLOCK) if self.pages else 0.0

    @property
    def dead_pct(self) -> float:
        total = self.live + self.dead
        return 100.0 * self.dead / total if total else 0.0


@dataclass(frozen=True)
class Redundant:
    """``index`` is made redundant by ``covered_by`` (its key columns
    are a prefix of the other's)."""

    index: str
    covered_by: str
    table: str
    columns: list[str]
    bytes: int


@dataclass
class Health:
    indexes: list[IndexInfo] = field(default_factory=list)
    tables: list[TableInfo] = field(default_factory=list)
    unused: list[IndexInfo] = field(default_factory=list)
    redundant: list[Redundant] = field(default_factory=list)
    invalid: list[IndexInfo] = field(default_factory=list)
    autovacuum_lag: list[TableInfo] = field(default_factory=list)
    seq_scan_big: list[TableInfo] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Small, JSON-able: what the report and the catalog keep."""
        return {
            "unused": [_index_row(i) for i in self.unused],
            "redundant": [asdict(r) for r in self.redundant],
            "invalid": [_index_row(i) for i in self.invalid],
            "bloated_indexes": [
                _index_row(i)
                for i in sorted(self.indexes, key=lambda i: -i.bloat_bytes)[:10]
                if i.bloat_bytes > 0
            ],
            "bloated_tables": [
                _table_row(t)
                for t in sorted(self.tables, key=lambda t: -t.bloat_bytes)[:10]
                if t.bloat_bytes > 0
            ],
            "autovacuum_lag": [_table_row(t) for t in self.autovacuum_lag],
            "seq_scan_big": [_table_row(t) for t in self.seq_scan_big],
        }


def _index_row(i: IndexInfo) -> dict[str, Any]:
    return {
        "index": i.index,
        "table": i.table,
        "bytes": i.bytes,
        "idx_scan": i.idx_scan,
        "columns": i.columns,
        "writes": i.writes,
        "bloat_bytes": i.bloat_bytes,
        "bloat_pct": round(i.bloat_pct, 1),
        "valid": i.valid,
        "definition": i.definition,
    }


def _table_row(t: TableInfo) -> dict[str, Any]:
    return {
        "table": t.table,
        "bytes": t.bytes,
        "dead": t.dead,
        "dead_pct": round(t.dead_pct, 1),
        "bloat_bytes": t.bloat_bytes,
        "bloat_pct": round(t.bloat_pct, 1),
        "seq_scan": t.seq_scan,
        "seq_tup_read": t.seq_tup_read,
        "idx_scan": t.idx_scan,
        "modified": t.modified,
        "last_vacuum": None if t.last_vacuum is None else str(t.last_vacuum),
        "last_analyze": None if t.last_analyze is None else str(t.last_analyze),
    }


def read_objects(conn: Any) -> tuple[list[IndexInfo], list[TableInfo]]:
    """Every user index and table of the database with its statistics."""
    from psycopg2.extras import RealDictCursor

    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(Q.INDEXES)
        indexes = [IndexInfo(**{**r, "columns": list(r["columns"])}) for r in cur.fetchall()]
        cur.execute(Q.TABLES)
        tables = [TableInfo(**r) for r in cur.fetchall()]
    return indexes, tables


def redundant_indexes(indexes: list[IndexInfo]) -> list[Redundant]:
    """Valid btree indexes whose key columns are a leading prefix of another valid btree index of
    the same table (equal columns: the later-named one is redundant). Unique/constraint indexes are
    kept."""
    btrees = [
        i
        for i in indexes
        if i.method == "btree" and i.valid and not i.partial and "(expr)" not in i.columns
    ]
    out: list[Redundant] = []
    for a in btrees:
        if a.is_unique or a.is_primary or a.backs_constraint:
            continue
        for b in btrees:
            if a is b or a.table != b.table or b.columns[: len(a.columns)] != a.columns:
                continue
            if len(b.columns) == len(a.columns) and (a.index < b.index and not b.backs_constraint):
                continue  # equal twins: report the later name only (once)
            out.append(Redundant(a.index, b.index, a.table, a.columns, a.bytes))
            break
    return out


def assess(
    indexes: list[IndexInfo],
    tables: list[TableInfo],
    *,
    unused_min_bytes: float,
    big_table_bytes: float,
) -> Health:
    h = Health(indexes=indexes, tables=tables)
    h.unused = [
        i
        for i in indexes
        if i.valid
        and i.idx_scan == 0
        and not (i.is_unique or i.is_primary)
        and not i.backs_constraint
        and i.bytes >= unused_min_bytes
    ]
    h.redundant = redundant_indexes(indexes)
    h.invalid = [i for i in indexes if not i.valid]
    h.autovacuum_lag = [t for t in tables if t.dead > t.av_threshold and t.dead > 0]
    h.seq_scan_big = sorted(
        [t for t in tables if t.bytes >= big_table_bytes and t.seq_scan > 0],
        key=lambda t: -t.seq_tup_read,
    )[:10]
    return h


def read_and_assess(conn: Any, cfg: Tuning) -> Health:
    """:func:`read_objects` of the database, assessed with the inventory's tuning thresholds."""
    indexes, tables = read_objects(conn)
    return assess(
        indexes,
        tables,
        unused_min_bytes=cfg.unused_index_min_mb * MB,
        big_table_bytes=cfg.big_table_mb * MB,
    )
