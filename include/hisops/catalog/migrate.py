"""Create or upgrade the ops catalog schema with Alembic, no alembic.ini needed.

The migration scripts ship inside the package (``hisops/catalog/migrations``), so this works
from an installed wheel as well as from the checkout. Safe to run any number of times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool

from hisops.catalog.tables import SCHEMA

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
# Alembic keeps its running context in module globals: one migration per process at a time.
# Across processes and hosts, env.py serialises with a PostgreSQL advisory lock.
_IN_PROCESS = threading.Lock()


def alembic_config() -> Config:
    """An Alembic Config pointing at the packaged migrations (for tooling and tests)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool)


def _run(url: str, fn: Callable[[Config, str], None], revision: str) -> None:
    cfg = alembic_config()
    engine = _engine(url)
    try:
        with (
            _IN_PROCESS,
            engine.begin() as conn,
        ):  # one transaction: all of it or nothing (PostgreSQL has transactional DDL)
            cfg.attributes["connection"] = conn
            fn(cfg, revision)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the catalog at ``url`` up to ``revision`` (creates schema ``hisops`` if missing)."""
    _run(url, command.upgrade, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the catalog down to ``revision`` (``"base"`` drops every catalog table)."""
    _run(url, command.downgrade, revision)


def head() -> str:
    """The newest revision shipped with this package."""
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if found is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return found


def current(url: str) -> str | None:
    """The revision the catalog at ``url`` is at; None when it was never migrated."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"version_table_schema": SCHEMA, "version_table": VERSION_TABLE}
            )
            return ctx.get_current_revision()
    finally:
        engine.dispose()
