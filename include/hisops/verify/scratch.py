"""演练临时库 Scratch databases for restore drills, and pg_restore.

A scratch database is named ``hisops_drill_<database id>_<backup id>_<yymmddHHMMSS>_<4 hex>``:
a name no production database has, that says what it holds and since when. Every DROP in this
package goes through :func:`drop_database`, which refuses any name not matching the pattern it is
given — a drill can never drop production, whatever it is handed.

The restore staging databases of ``restore_database`` follow the same rule with their own name
pattern (``hisops.restore.names``), handed to :func:`drop_database`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.targets.postgres import (
    connect,
    dsn_with,
    installed_tools,
    libpq_env,
    major_of,
    on_path,
    stop_process,
)

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection
    from psycopg2.sql import Identifier

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "hisops_drill_"
STAMP = "%y%m%d%H%M%S"
_TAIL = r"_(?P<backup>[0-9]{1,10})_(?P<stamp>[0-9]{12})_[0-9a-f]{4}"
SCRATCH_RE = re.compile(rf"{SCRATCH_PREFIX}(?P<db>[a-z0-9_]{{1,20}}){_TAIL}")
DRILL_APP = "hisops-drill"  # application_name of the drill's own sessions
RESTORE_APP = "hisops-restore"  # pg_restore's sessions
MAINTENANCE_DB = "postgres"
STDERR_TAIL = 3000


class ScratchGuardError(RuntimeError):
    """Refused to drop a database whose name is not a scratch/staging name."""


class RestoreError(RuntimeError):
    """pg_restore failed, or no usable pg_restore was found (message names the cause)."""


# --- names -------------------------------------------------------------------------------------


def _slug_part(database_id: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", database_id.lower())[:20].strip("_") or "db"


def scratch_name(
    database_id: str, backup_id: int, now: datetime | None = None, prefix: str = SCRATCH_PREFIX
) -> str:
    """``hisops_drill_his_emr_42_250101010000_a1b2`` (≤ 63 bytes, a valid plain identifier)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP)
    return f"{prefix}{_slug_part(database_id)}_{int(backup_id)}_{stamp}_{secrets.token_hex(2)}"


def is_scratch_name(name: str, pattern: re.Pattern[str] = SCRATCH_RE) -> bool:
    return bool(pattern.fullmatch(name)) and len(name.encode()) <= 63


def created_at(name: str) -> datetime | None:
    """When a scratch database was created, read from its name (None if not one)."""
    match = SCRATCH_RE.fullmatch(name)
    return datetime.strptime(match["stamp"], STAMP).replace(tzinfo=UTC) if match else None


def assert_droppable(name: str, pattern: re.Pattern[str] = SCRATCH_RE) -> None:
    if not is_scratch_name(name, pattern):
        raise ScratchGuardError(
            f"拒绝删除非演练库 refusing to drop {name!r}: not a scratch database name "
            f"(must match {pattern.pattern})"
        )


# --- connections -------------------------------------------------------------------------------


@contextmanager
def admin_connection(dsn: str) -> Iterator[PgConnection]:
    """Autocommit connection to the server's maintenance database (CREATE/DROP/RENAME DATABASE)."""
    conn = connect(dsn_with(dsn, MAINTENANCE_DB), application_name=DRILL_APP, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def _ident(name: str) -> Identifier:
    from psycopg2 import sql

    return sql.Identifier(name)


def database_exists(dsn: str, name: str) -> bool:
    with admin_connection(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def create_database(dsn: str, name: str) -> None:
    """CREATE DATABASE from template0: empty, as pg_restore expects."""
    from psycopg2 import sql

    with admin_connection(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(_ident(name)))
    log.info("已创建 created database %s", name)


def drop_database(dsn: str, name: str, pattern: re.Pattern[str] = SCRATCH_RE) -> bool:
    """DROP a scratch database (connections forced off); True if it existed.

    Guarded by ``pattern``."""
    from psycopg2 import sql

    assert_droppable(name, pattern)
    if not database_exists(dsn, name):
        return False
    with admin_connection(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_ident(name)))
    log.info("已删除 dropped database %s", name)
    return True


def list_scratch(dsn: str, pattern: re.Pattern[str] = SCRATCH_RE) -> list[str]:
    with admin_connection(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database ORDER BY datname")
        return [row[0] for row in cur.fetchall() if is_scratch_name(row[0], pattern)]


def drop_stale(
    dsn: str, older_than: timedelta = timedelta(hours=12), now: datetime | None = None
) -> list[str]:
    """Drop scratch databases left by drills that were killed (older than ``older_than``)."""
    limit = (now or datetime.now(UTC)) - older_than
    stale = [n for n in list_scratch(dsn) if (created_at(n) or limit) < limit]
    return [n for n in stale if drop_database(dsn, n)]


# --- pg_restore --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreRun:
    """One pg_restore: how long it took (the measured RTO) and what it said."""

    seconds: float
    jobs: int
    tool: str
    stderr_tail: str = ""


def find_pg_restore(pg_bindir: str | None = None, dump_version: str | None = None) -> Path:
    """pg_restore from ``pg_bindir``, else the newest installed one (never older than the pg_dump
    that wrote the backup)."""
    if pg_bindir:
        candidates = [Path(pg_bindir) / "pg_restore"]
    else:
        candidates = [path for _major, path in reversed(installed_tools("pg_restore"))]
        candidates += [p for p in [on_path("pg_restore")] if p]
    found = next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)
    if found is None:
        raise RestoreError(
            "找不到 pg_restore not found: install the PostgreSQL client tools or set pg_bindir"
        )
    needed = major_of(dump_version)
    proc = subprocess.run([str(found), "--version"], capture_output=True, text=True, timeout=30)
    have = major_of(proc.stdout)
    if needed and have < needed:
        raise RestoreError(
            f"pg_restore {have} ({found}) 早于生成备份的 pg_dump is older than the pg_dump "
            f"that wrote the backup ({dump_version}); set pg_bindir to a newer client"
        )
    return found


def pg_restore_argv(
    tool: Path, dump_dir: Path, conninfo: str, jobs: int, *, keep_owners: bool = False
) -> list[str]:
    argv = [
        str(tool),
        f"--jobs={max(1, jobs)}",
        "--exit-on-error",
        "--no-password",
        f"--dbname={conninfo}",
    ]
    if not keep_owners:  # drills may run on another server whose roles differ: data, not ACLs
        argv += ["--no-owner", "--no-privileges"]
    return [*argv, str(dump_dir)]


def run_pg_restore(
    dump_dir: Path,
    dsn: str,
    *,
    jobs: int = 2,
    tool: Path | None = None,
    keep_owners: bool = False,
    extra_env: dict[str, str] | None = None,
) -> RestoreRun:
    """pg_restore a directory-format dump into the (empty) database ``dsn``.

    RestoreError on failure."""
    tool = tool or find_pg_restore()
    conninfo, env = libpq_env(dsn, application_name=RESTORE_APP)
    argv = pg_restore_argv(tool, dump_dir, conninfo, jobs, keep_owners=keep_owners)
    log.info(
        "运行 running: %s",
        " ".join(a if not a.startswith("--dbname=") else "--dbname=…" for a in argv),
    )
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            env={**env, **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            rc = proc.wait()
        finally:
            stop_process(proc)
        err.seek(0)
        tail = err.read()[-STDERR_TAIL:].decode("utf-8", "replace").strip()
    seconds = time.monotonic() - start
    if rc != 0:
        raise RestoreError(
            f"pg_restore 失败 failed (exit {rc}) after {seconds:.1f}s: {tail or 'no message'}"
        )
    return RestoreRun(seconds=round(seconds, 3), jobs=jobs, tool=str(tool), stderr_tail=tail)


def run_sql(dsn: str, statements: Sequence[str]) -> None:
    """Run statements in autocommit (test hooks, small fix-ups)."""
    conn = connect(dsn, application_name=DRILL_APP, autocommit=True)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()
