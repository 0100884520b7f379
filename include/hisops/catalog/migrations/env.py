"""Alembic environment for the ops catalog.

Normally driven by :mod:`hisops.catalog.migrate`, which hands over an open connection in
``config.attributes["connection"]``. Every run takes a transaction-scoped advisory lock (two
workers upgrading at once take turns) and creates the ``hisops`` schema if it is missing, so
the version table ``hisops.alembic_version`` has a home.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, func, pool, select
from sqlalchemy.schema import CreateSchema

from hisops.catalog.tables import SCHEMA, metadata

MIGRATION_LOCK = 0x6869736F7073  # "hisops"

config = context.config


def _migrate(connection: Connection) -> None:
    connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
    connection.execute(CreateSchema(SCHEMA, if_not_exists=True))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=SCHEMA,
        include_schemas=False,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def _standalone_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("HISOPS_CATALOG_URL")
    if not url:
        raise RuntimeError("no catalog URL: use hisops.catalog.migrate or set HISOPS_CATALOG_URL")
    return url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(_standalone_url(), poolclass=pool.NullPool)
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported for the hisops catalog")
run_migrations_online()
