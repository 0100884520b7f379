"""Run-time glue for task bodies: inventory, targets and the catalog from Airflow connections."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hisops.airflow.connections import catalog_sqlalchemy_url, postgres_dsn, ssh_params


def inventory():
    """The inventory as the task sees it now (same file as at parse time)."""
    from hisops.inventory.loader import default_inventory_path, load_inventory

    return load_inventory(default_inventory_path())


def runner_for(host: Any):
    """The command runner for an inventory host: local, or SSH through its connection."""
    from hisops.targets.runner import LocalRunner, SshRunner

    if getattr(host, "local", False):
        return LocalRunner(host.id)
    return SshRunner(host.id, ssh_params(host.ssh_conn_id))


def dsn_for(database: Any) -> str:
    """DSN of an inventory database or PostgreSQL server (anything with a ``conn_id``)."""
    return postgres_dsn(database.conn_id)


@lru_cache(maxsize=4)
def _repository(url: str):
    from hisops.catalog.repository import CatalogRepository

    return CatalogRepository.from_url(url, pool_size=2, max_overflow=2)


def catalog():
    """The catalog repository (one engine per task process and catalog URL)."""
    return _repository(catalog_sqlalchemy_url())


def channels() -> list:
    """The inventory's notification channels (a broken one is skipped with a warning)."""
    from hisops.airflow.notify_glue import channels_from_inventory

    return channels_from_inventory(inventory().notifications, strict=False)


def pgbackrest_for(server: Any):
    """PgBackRest for an inventory server: config rendered from the inventory; run locally (its
    password from the server's connection, in the environment) or over its host's SSH runner."""
    from hisops.airflow.connections import get_connection
    from hisops.pitr.config import render
    from hisops.pitr.pgbackrest import PgBackRest

    conn = get_connection(server.conn_id)
    cfg = render(server, conn.login, conn.port)
    host = inventory().locate_host(server.host)[1] if server.host else None
    if host is None or host.local:
        return PgBackRest(cfg, os_user=server.pitr.os_user, password=conn.password)
    runner = runner_for(host)
    return PgBackRest(cfg, os_user=server.pitr.os_user, runner=runner,
                      ssh_user=getattr(getattr(runner, "params", None), "username", None))
