"""合成医院数据库 — generate a synthetic HIS database, deterministically and fast.

All rows are produced by PostgreSQL itself (set-based ``INSERT … SELECT`` over
``generate_series``, see ``data.sql``); every value is a hash of (seed, stream, row id), so the
same seed always gives the same database, whatever the chunking or parallelism. Tables are
loaded bare by several sessions in parallel; primary keys, indexes and foreign keys follow,
then ANALYZE. Scale 1 is about 100 MB (like ``pgbench -s``); fractional scales work.
"""

from __future__ import annotations

import math
import os
import queue
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from importlib import resources

import psycopg2
from psycopg2.extensions import connection as PgConnection

from hisops.targets.postgres import connect

Log = Callable[[str], None]

#: rows at scale 1 of the tables that grow with the scale, in load order
BASE_ROWS: dict[str, int] = {
    "doctor": 400,
    "patient": 25_000,
    "outpatient_visit": 80_000,
    "prescription": 50_000,
    "prescription_item": 100_000,
    "admission": 6_000,
    "medical_order": 50_000,
    "lab_result": 80_000,
    "medical_record_document": 25_000,
}
#: lower bounds so that tiny scales still give a few rows per table (a doctor per department)
MIN_ROWS: dict[str, int] = {"doctor": 24}
APP = "hisops-synth"  # application_name of the generator's sessions
DEFAULT_MIN_ROWS = 5
#: dictionary tables (dictionaries.sql), the same at every scale
FIXED_COUNTS: dict[str, int] = {
    "department": 24,
    "diagnosis_dict": 72,
    "drug": 60,
    "treatment_item": 24,
    "lab_test_item": 32,
}
TABLES: tuple[str, ...] = (*FIXED_COUNTS, *BASE_ROWS)
#: primary key column of every table (all are identity columns)
PRIMARY_KEYS: dict[str, str] = {
    "department": "department_id",
    "diagnosis_dict": "diagnosis_id",
    "drug": "drug_id",
    "treatment_item": "item_id",
    "lab_test_item": "test_id",
    "doctor": "doctor_id",
    "patient": "patient_id",
    "outpatient_visit": "visit_id",
    "prescription": "prescription_id",
    "prescription_item": "item_id",
    "admission": "admission_id",
    "medical_order": "order_id",
    "lab_result": "result_id",
    "medical_record_document": "document_id",
}
#: rough on-disk bytes per row (heap + indexes); only used to weight the progress percentage
ROW_BYTES: dict[str, int] = {"medical_record_document": 1500, "patient": 400, "doctor": 300}
DEFAULT_ROW_BYTES = 200
#: rows per INSERT statement; each chunk is one transaction
CHUNK_ROWS: dict[str, int] = {"medical_record_document": 20_000}
DEFAULT_CHUNK_ROWS = 50_000
DX_PER_DEPT = 3
SEED_LIMIT = 2**31
EXISTS_MESSAGE = "database already has HIS tables; use a new database"

SESSION_SETTINGS = (
    "SET synchronous_commit = off",
    "SET jit = off",
    "SET work_mem = '64MB'",
    "SET maintenance_work_mem = '256MB'",
)
_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_SECTION = re.compile(r"^-- @(\S+(?: \S+)?)\s*$", re.MULTILINE)
_CONSTRAINT = re.compile(r"ADD CONSTRAINT (\w+)")


# --- counts ------------------------------------------------------------------------------------
def _check_scale(scale: float) -> float:
    value = float(scale)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    return value


def scaled_rows(base: int, scale: float, minimum: int = DEFAULT_MIN_ROWS) -> int:
    """max(minimum, round(base * scale)), rounding halves up."""
    return max(minimum, int(math.floor(base * scale + 0.5)))


def expected_counts(scale: float = 1.0) -> dict[str, int]:
    """Row count of every table that ``generate(…, scale)`` produces."""
    value = _check_scale(scale)
    counts = dict(FIXED_COUNTS)
    for table, base in BASE_ROWS.items():
        counts[table] = scaled_rows(base, value, MIN_ROWS.get(table, DEFAULT_MIN_ROWS))
    return counts


# --- SQL files ------------------------------------------------------------------------------------
def sql_text(name: str) -> str:
    return resources.files("hisops.synth").joinpath(name).read_text(encoding="utf-8")


def sql_sections(name: str) -> dict[str, str]:
    """The ``-- @name`` sections of a SQL file, in file order."""
    parts = _SECTION.split(sql_text(name))
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def render(sql: str, params: Mapping[str, int]) -> str:
    """Replace psql-style ``:name`` placeholders with integer literals."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"no value for placeholder :{name}")
        return str(int(params[name]))

    return _PLACEHOLDER.sub(substitute, sql)


# --- connections ---------------------------------------------------------------------------------
def _connect(dsn: str) -> PgConnection:
    conn = connect(dsn, application_name=APP, autocommit=True)
    with conn.cursor() as cur:
        for setting in SESSION_SETTINGS:
            cur.execute(setting)
    return conn


def _execute(conn: PgConnection, sql: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql)


def _fetch_one(conn: PgConnection, sql: str, args: tuple = ()) -> tuple:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


class Sessions:
    """A few generator sessions (pg_temp helpers installed) running SQL tasks in parallel."""

    def __init__(self, dsn: str, jobs: int, setup_sql: str) -> None:
        self._idle: queue.SimpleQueue[PgConnection] = queue.SimpleQueue()
        self._all: list[PgConnection] = []
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="synth")
        for _ in range(jobs):
            conn = _connect(dsn)
            self._all.append(conn)
            _execute(conn, setup_sql)
            self._idle.put(conn)

    def _run_one(self, sql: str) -> None:
        conn = self._idle.get()
        try:
            _execute(conn, sql)
        finally:
            self._idle.put(conn)

    def run(self, tasks: Iterable[tuple[str, str]]) -> Iterator[str]:
        """Run (key, sql) tasks; yield each key as its task finishes. The first error is raised."""
        pending: dict[Future[None], str] = {
            self._pool.submit(self._run_one, sql): key for key, sql in tasks
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    key = pending.pop(future)
                    future.result()
                    yield key
        finally:
            for future in pending:
                future.cancel()
            if pending:
                self._cancel_running()

    def _cancel_running(self) -> None:
        for conn in self._all:
            conn.cancel()

    def close(self) -> None:
        """Drop the pg_temp helpers (synchronously, unlike backend exit) and disconnect."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for conn in self._all:
            try:
                if not conn.closed:
                    _execute(conn, "DISCARD TEMP")
            except psycopg2.Error:
                pass
            finally:
                conn.close()

    def __enter__(self) -> Sessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- phases --------------------------------------------------------------------------------------
def _ensure_empty(conn: PgConnection) -> None:
    found = _fetch_one(
        conn,
        "SELECT array_agg(t ORDER BY t) FROM unnest(%s::text[]) AS t "
        "WHERE to_regclass(quote_ident(t)) IS NOT NULL",
        (list(TABLES),),
    )[0]
    if found:
        raise ValueError(f"{EXISTS_MESSAGE} (found: {', '.join(found)})")


def _in_transaction(conn: PgConnection, *statements: str) -> None:
    conn.autocommit = False
    try:
        for sql in statements:
            _execute(conn, sql)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True


def _create_schema(conn: PgConnection) -> None:
    _in_transaction(conn, sql_text("schema.sql"), sql_text("dictionaries.sql"))


def _params(conn: PgConnection, counts: Mapping[str, int], seed: int) -> dict[str, int]:
    """Placeholder values: seed, row counts (dictionaries as loaded) and drug id ranges."""
    params = {"seed": seed, "dx_per_dept": DX_PER_DEPT}
    params.update({f"n_{table}": n for table, n in counts.items()})
    for table in FIXED_COUNTS:
        params[f"n_{table}"] = _fetch_one(conn, f"SELECT count(*) FROM {table}")[0]
    for kind, category in enumerate(("西药", "中成药", "中草药"), start=1):
        low, n = _fetch_one(
            conn, "SELECT min(drug_id), count(*) FROM drug WHERE category = %s", (category,)
        )
        params[f"drug_lo_{kind}"], params[f"drug_n_{kind}"] = low, n
    return params


@dataclass(frozen=True)
class Chunk:
    table: str
    lo: int
    hi: int

    @property
    def rows(self) -> int:
        return self.hi - self.lo + 1

    @property
    def weight(self) -> int:
        return self.rows * ROW_BYTES.get(self.table, DEFAULT_ROW_BYTES)

    @property
    def key(self) -> str:
        return f"{self.table}:{self.lo}"


def plan_chunks(counts: Mapping[str, int]) -> list[Chunk]:
    """Id ranges of every scaled table, interleaved so all tables advance together."""
    chunks: list[tuple[float, Chunk]] = []
    for table in BASE_ROWS:
        total, size = counts[table], CHUNK_ROWS.get(table, DEFAULT_CHUNK_ROWS)
        for lo in range(1, total + 1, size):
            chunks.append(((lo - 1) / total, Chunk(table, lo, min(total, lo + size - 1))))
    return [chunk for _, chunk in sorted(chunks, key=lambda item: item[0])]


class Progress:
    """Percent (by estimated bytes), rows/s and database size, at most every few seconds."""

    def __init__(
        self, conn: PgConnection, chunks: list[Chunk], log: Log, every: float = 3.0
    ) -> None:
        self.conn, self.log, self.every = conn, log, every
        self.base_size = _database_size(conn)
        self.total = sum(c.weight for c in chunks) or 1
        self.done_weight = self.rows = 0
        self.start = self.last = time.monotonic()

    def advance(self, chunk: Chunk) -> None:
        self.done_weight += chunk.weight
        self.rows += chunk.rows
        now = time.monotonic()
        if now - self.last >= self.every or self.done_weight >= self.total:
            self.last = now
            self.log(self.line(chunk, now - self.start))

    def line(self, chunk: Chunk, elapsed: float) -> str:
        size = _database_size(self.conn)
        seconds = max(elapsed, 1e-6)
        return (
            f"synth: {100 * self.done_weight / self.total:5.1f}% loaded, {self.rows:,} rows in "
            f"{elapsed:.1f}s ({self.rows / seconds:,.0f} rows/s, "
            f"{(size - self.base_size) / 1e6 / seconds:.1f} "
            f"MB/s), database {size / 1e6:,.0f} MB; last chunk {chunk.table} {chunk.lo}-{chunk.hi}"
        )


def _database_size(conn: PgConnection) -> int:
    return int(_fetch_one(conn, "SELECT pg_database_size(current_database())")[0])


def _load(sessions: Sessions, conn: PgConnection, params: Mapping[str, int], log: Log) -> None:
    sections = sql_sections("data.sql")
    chunks = plan_chunks({t: params[f"n_{t}"] for t in BASE_ROWS})
    by_key = {c.key: c for c in chunks}
    progress = Progress(conn, chunks, log)
    tasks = ((c.key, render(sections[c.table], {**params, "lo": c.lo, "hi": c.hi})) for c in chunks)
    for key in sessions.run(tasks):
        progress.advance(by_key[key])


def _timed(sessions: Sessions, tasks: list[tuple[str, str]], what: str, log: Log) -> None:
    start = time.monotonic()
    for _ in sessions.run(tasks):
        pass
    log(f"synth: {what} in {time.monotonic() - start:.1f}s")


def _build_keys(sessions: Sessions, counts: Mapping[str, int], log: Log) -> None:
    sections = sql_sections("constraints.sql")
    tables = sorted(TABLES, key=lambda t: -counts[t] * ROW_BYTES.get(t, DEFAULT_ROW_BYTES))
    _timed(
        sessions,
        [(t, sections[f"keys {t}"]) for t in tables],
        "primary keys and indexes built",
        log,
    )


def _add_foreign_keys(sessions: Sessions, conn: PgConnection, log: Log) -> None:
    """Add all FKs NOT VALID (brief locks, one session), then validate tables in parallel."""
    sections = sql_sections("constraints.sql")
    fks = {
        name.split()[1]: _CONSTRAINT.findall(sql)
        for name, sql in sections.items()
        if name.startswith("fk ")
    }
    _in_transaction(conn, *(sections[f"fk {table}"] for table in fks))
    tasks = [
        (table, "\n".join(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name};" for name in names))
        for table, names in fks.items()
    ]
    _timed(sessions, tasks, f"{sum(map(len, fks.values()))} foreign keys validated", log)


def _finish(sessions: Sessions, conn: PgConnection, log: Log) -> None:
    _timed(sessions, [(t, f"ANALYZE {t}") for t in TABLES], "analyzed", log)
    for table, column in PRIMARY_KEYS.items():
        _execute(
            conn,
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), max({column})) "
            f"FROM {table}",
        )
        _execute(conn, f"ALTER TABLE {table} RESET (autovacuum_enabled)")


def count_rows(conn: PgConnection) -> dict[str, int]:
    row = _fetch_one(conn, "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES))
    return dict(zip(TABLES, (int(n) for n in row), strict=True))


def _log_done(
    log: Log, counts: Mapping[str, int], elapsed: float, base_size: int, size: int
) -> None:
    grown = (size - base_size) / 1e6
    log(
        f"synth: done in {elapsed:.1f}s: {sum(counts.values()):,} rows, "
        f"database {size / 1e6:,.0f} MB "
        f"(+{grown:,.0f} MB, {grown / max(elapsed, 1e-6):.1f} MB/s)"
    )


def default_jobs() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not -SEED_LIMIT <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [-2**31, 2**31), not {seed!r}")
    return seed


def generate(
    dsn: str, scale: float = 1.0, seed: int = 42, log: Log = print, jobs: int | None = None
) -> dict[str, int]:
    """Create the HIS schema and data in the empty database ``dsn``; return row counts per table.

    Raises ValueError when the database already holds any of the HIS tables.
    """
    counts = expected_counts(scale)
    _check_seed(seed)
    jobs = jobs or default_jobs()
    start = time.monotonic()
    conn = _connect(dsn)
    try:
        _ensure_empty(conn)
        base_size = _database_size(conn)
        _create_schema(conn)
        params = _params(conn, counts, seed)
        log(
            f"synth: scale {scale:g}, seed {seed}, {jobs} sessions; loading "
            f"{sum(counts[t] for t in BASE_ROWS):,} rows into {len(BASE_ROWS)} tables"
        )
        with Sessions(dsn, jobs, render(sql_text("functions.sql"), params)) as sessions:
            _load(sessions, conn, params, log)
            _build_keys(sessions, counts, log)
            _add_foreign_keys(sessions, conn, log)
            _finish(sessions, conn, log)
        result = count_rows(conn)
        _log_done(log, result, time.monotonic() - start, base_size, _database_size(conn))
        return result
    finally:
        conn.close()
