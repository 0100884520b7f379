"""PostgreSQL access for every capability: connections, libpq environment, client tools, stopping.

The one place hisops opens a PostgreSQL connection or finds a PostgreSQL program:

- :func:`connect` — a psycopg2 connection with a connect timeout and an ``application_name`` (so a
  hisops session is recognisable in ``pg_stat_activity``), optional statement/lock timeouts and
  read-only mode. It raises psycopg2's own ``OperationalError`` when the server cannot be reached:
  each caller turns that into the failure its users expect (``BackupError``, a drill's stop,
  ``TargetUnreachable``), so no caller's message changes.
- :func:`pg_session` — the checks' and probes' session: short timeouts, read-only by default,
  ``TargetUnreachable`` when it cannot connect.
- :func:`libpq_env` — conninfo without the password plus an environment carrying ``PGPASSWORD``
  for pg_dump / pg_restore / pg_dumpall: no secret on a command line (``ps``).
- :func:`installed_tools`, :func:`tool_version`, :func:`server_bindir` — which PostgreSQL programs
  this machine has (Debian layout ``/usr/lib/postgresql/<major>/bin`` first, then ``PATH``).
- :func:`stop_process`, :func:`pg_ctl_stop_argv`, :func:`as_os_user` — stopping a client program
  we started, and a server cluster we run (as the OS user who owns it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.targets.errors import TargetUnreachable

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

PG_ROOT = Path("/usr/lib/postgresql")
#: "pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)" → major 15, minor 8
VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
CONNECT_TIMEOUT = 15  # seconds; also PGCONNECT_TIMEOUT for the client programs
SERVER_BINDIR_ENV = "HISOPS_PG_BINDIR"
STOP_GRACE_SECONDS = 10


class PgToolError(RuntimeError):
    """A PostgreSQL program was not found, or its version could not be read."""


# --- connections ----------------------------------------------------------------------------------


def session_options(
    *,
    statement_timeout_ms: int | None = None,
    lock_timeout_ms: int | None = None,
    read_only: bool = False,
) -> str:
    """The libpq ``options`` string (``-c name=value`` …) for these session settings."""
    settings = []
    if statement_timeout_ms is not None:
        settings.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if lock_timeout_ms is not None:
        settings.append(f"-c lock_timeout={int(lock_timeout_ms)}")
    if read_only:
        settings.append("-c default_transaction_read_only=on")
    return " ".join(settings)


def connect(
    dsn: str,
    *,
    application_name: str,
    connect_timeout: int = CONNECT_TIMEOUT,
    autocommit: bool = False,
    statement_timeout_ms: int | None = None,
    lock_timeout_ms: int | None = None,
    read_only: bool = False,
) -> PgConnection:
    """A psycopg2 connection to ``dsn`` named ``application_name``; the caller closes it.

    Raises ``psycopg2.OperationalError`` (unchanged) when the server cannot be reached or refuses
    the login, so that each caller keeps reporting it its own way.
    """
    import psycopg2

    kwargs: dict[str, object] = {
        "connect_timeout": connect_timeout,
        "application_name": application_name,
    }
    options = session_options(
        statement_timeout_ms=statement_timeout_ms,
        lock_timeout_ms=lock_timeout_ms,
        read_only=read_only,
    )
    if options:
        kwargs["options"] = options
    conn = psycopg2.connect(dsn, **kwargs)
    if autocommit:
        conn.autocommit = True
    return conn


@contextmanager
def pg_session(
    dsn: str,
    *,
    target: str = "postgres",
    statement_timeout_ms: int = 5000,
    connect_timeout: int = 5,
    read_only: bool = True,
    application_name: str = "hisops",
) -> Iterator[PgConnection]:
    """Autocommit, statement and lock timeouts, read-only by default; TargetUnreachable if down."""
    import psycopg2

    try:
        conn = connect(
            dsn,
            application_name=application_name,
            connect_timeout=connect_timeout,
            statement_timeout_ms=statement_timeout_ms,
            lock_timeout_ms=min(statement_timeout_ms, 2000),
            read_only=read_only,
            autocommit=True,
        )
    except psycopg2.OperationalError as exc:
        raise TargetUnreachable(target, first_line(str(exc))) from exc
    try:
        yield conn
    finally:
        conn.close()


def first_line(text: str) -> str:
    """The first non-empty line of a (libpq) error message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "unknown error"


def dsn_with(dsn: str, dbname: str | None = None, **params: str) -> str:
    """The same credentials with another database (and/or host, port …)."""
    from psycopg2.extensions import make_dsn, parse_dsn

    changed = {**params, **({"dbname": dbname} if dbname is not None else {})}
    return make_dsn(**{**parse_dsn(dsn), **changed})


def dsn_dbname(dsn: str) -> str | None:
    from psycopg2.extensions import parse_dsn

    return parse_dsn(dsn).get("dbname")


# --- client programs ------------------------------------------------------------------------------


def libpq_env(
    dsn: str,
    *,
    application_name: str,
    connect_timeout: int = CONNECT_TIMEOUT,
) -> tuple[str, dict[str, str]]:
    """(conninfo without password, environment with PGPASSWORD): no secret on the command line."""
    from psycopg2.extensions import make_dsn, parse_dsn

    params = parse_dsn(dsn)
    password = params.pop("password", None)
    env = {
        **os.environ,
        "PGAPPNAME": application_name,
        "PGCONNECT_TIMEOUT": str(int(connect_timeout)),
    }
    if password:
        env["PGPASSWORD"] = password
    return make_dsn(**params), env


def major_of(version_text: str | None) -> int:
    """15 from 'pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)'; 0 when unknown."""
    match = VERSION_RE.search(version_text or "")
    return int(match.group(1)) if match else 0


def tool_version(path: Path) -> tuple[str, int]:
    """(``--version`` text, major) of a PostgreSQL program; PgToolError when unreadable."""
    proc = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    major = major_of(proc.stdout)
    if proc.returncode != 0 or not major:
        raise PgToolError(
            f"无法识别 {Path(path).name} 版本 cannot read the version of {path}: "
            f"{(proc.stdout + proc.stderr).strip()[:200]}"
        )
    return proc.stdout.strip(), major


def installed_tools(tool: str, root: Path | None = None) -> list[tuple[int, Path]]:
    """(major, path) of ``tool`` under ``/usr/lib/postgresql/<major>/bin``, oldest first."""
    root = PG_ROOT if root is None else root
    if not root.is_dir():
        return []
    return sorted(
        (int(p.name), p / "bin" / tool)
        for p in root.glob("*")
        if p.name.isdigit() and (p / "bin" / tool).exists()
    )


def on_path(tool: str) -> Path | None:
    found = shutil.which(tool)
    return Path(found) if found else None


def server_bindir() -> Path:
    """Newest PostgreSQL server binaries (initdb, pg_ctl) here: $HISOPS_PG_BINDIR, Debian, PATH."""
    env = os.environ.get(SERVER_BINDIR_ENV)
    if env:
        return Path(env)
    installed = installed_tools("initdb")
    if installed:
        return installed[-1][1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PgToolError(
        "找不到 PostgreSQL 服务端程序 server binaries (initdb, pg_ctl) not found; "
        "install postgresql"
    )


# --- stopping -------------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen | None, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop a client program we started (pg_dump, pg_restore): SIGTERM, then SIGKILL after grace."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def as_os_user(argv: list[str], os_user: str) -> list[str]:
    """``argv`` run as ``os_user`` (via runuser) when we are root; PostgreSQL refuses root."""
    if os.geteuid() == 0 and os_user != "root":
        return ["runuser", "-u", os_user, "--", *argv]
    return argv


def pg_ctl_stop_argv(
    datadir: Path | str, *, mode: str = "fast", bindir: Path | None = None, wait: bool = True
) -> list[str]:
    """``pg_ctl stop`` for the cluster in ``datadir`` (``mode``: smart, fast or immediate)."""
    if mode not in ("smart", "fast", "immediate"):
        raise ValueError(f"pg_ctl stop mode must be smart, fast or immediate, not {mode!r}")
    pg_ctl = (bindir if bindir is not None else server_bindir()) / "pg_ctl"
    return [str(pg_ctl), "stop", "-D", str(datadir), "-m", mode, *(["-w"] if wait else [])]
