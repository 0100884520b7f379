"""PostgreSQL sessions for checks and probes: short timeouts, read-only by default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hisops.targets.errors import TargetUnreachable


@contextmanager
def pg_session(
    dsn: str,
    *,
    target: str = "postgres",
    statement_timeout_ms: int = 5000,
    connect_timeout: int = 5,
    read_only: bool = True,
    application_name: str = "hisops",
) -> Iterator[Any]:
    """A psycopg2 connection with statement_timeout set; TargetUnreachable when it cannot connect."""
    import psycopg2

    options = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={min(statement_timeout_ms, 2000)}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    try:
        conn = psycopg2.connect(
            dsn, connect_timeout=connect_timeout, options=options, application_name=application_name
        )
    except psycopg2.OperationalError as exc:
        raise TargetUnreachable(target, _first_line(str(exc))) from exc
    try:
        conn.autocommit = True
        yield conn
    finally:
        conn.close()


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "unknown error"
