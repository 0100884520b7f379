"""Run-time glue for task bodies: inventory, targets and the catalog from Airflow connections."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hisops.airflow.connections import catalog_sqlalchemy_url, postgres_dsn, ssh_params


def inventory():
    """The inventory as the task sees it now (same file as at parse time)."""
    from hisops.inventory.loader import default_inventory_path, load_inventory

    return load_inventory(default_inventory_path())


#: executors that run every task on the scheduler's own machine (`local: true` means that machine)
SINGLE_MACHINE_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})


class LocalHostRefused(RuntimeError):
    """A `local: true` host under an executor that may run the task on any machine."""


def distributed_executor() -> str | None:
    """The configured executor that may run tasks on other machines (Celery, Kubernetes…), if
    any."""
    from airflow.configuration import conf

    names = [
        n.strip().rsplit(".", 1)[-1].split(":")[-1] for n in conf.get("core", "executor").split(",")
    ]
    return next((n for n in names if n and n not in SINGLE_MACHINE_EXECUTORS), None)


def refuse_local_host_if_distributed(host: Any) -> None:
    executor = distributed_executor()
    if executor:
        raise LocalHostRefused(
            f"主机 {host.id} 为 local: true，但 {executor} 可能在任一工作节点上运行任务，"
            "测到的将是那台机器；"
            f"请为其配置 ssh_conn_id（可 SSH 到本机）— host {host.id} is `local: true` but "
            f"{executor} runs "
            "tasks on any worker, so it would measure whichever machine ran the task: give it an "
            "ssh_conn_id instead (SSH to itself works); README: Production"
        )


def runner_for(host: Any):
    """The command runner for an inventory host: local, or SSH through its connection."""
    from hisops.targets.runner import LocalRunner, SshRunner

    if getattr(host, "local", False):
        refuse_local_host_if_distributed(host)
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
    return PgBackRest(
        cfg,
        os_user=server.pitr.os_user,
        runner=runner,
        ssh_user=getattr(getattr(runner, "params", None), "username", None),
    )


def dump_spec(database_id: str, *, dag_id: str | None, run_id: str | None, who: str):
    """DumpSpec of an inventory database from the inventory and its Airflow connections
    (db_backup's backups and restore_database's safety backups)."""
    from hisops.airflow.connections import get_connection
    from hisops.airflow.shared_storage import backup_root
    from hisops.backup.dump import DumpSpec

    inv = inventory()
    system, db = inv.locate_database(database_id)
    policy = db.backup
    secret = get_connection(policy.encryption_conn_id).password if policy.encrypt else None
    if policy.encrypt and not secret:
        raise ValueError(
            f"加密连接没有密码 encryption connection {policy.encryption_conn_id!r} has no password"
        )
    return DumpSpec(
        database_id=db.id,
        system_id=system.id,
        dsn=dsn_for(db),
        storage=backup_root(inv),
        jobs=policy.jobs,
        compress=policy.compress,
        exact_count_max_rows=policy.exact_count_max_rows,
        pg_bindir=db.pg_bindir,
        encryption_secret=secret,
        encryption_conn_id=policy.encryption_conn_id if policy.encrypt else None,
        dag_run_id=run_id,
        dag_id=dag_id,
        actor=who,
    )
