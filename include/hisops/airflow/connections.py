"""Airflow connections → what the domain needs (DSNs, SSH parameters, catalog URL).

Called at task run time only — never at DAG parse time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

CATALOG_CONN_ID = "hisops_catalog"


def get_connection(conn_id: str) -> Any:
    """Resolve a connection through Airflow.

    In a task: the task SDK (secrets backends, env, then the API server). Outside tasks
    (CLI, api-server plugin): the core lookup, which also reads the metadata database.
    """
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as sdk_error:
        try:
            from airflow.models.connection import Connection

            return Connection.get_connection_from_secrets(conn_id)
        except Exception:
            raise sdk_error from None


def _kv(value: Any) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def postgres_dsn(conn_id: str, dbname: str | None = None) -> str:
    """libpq key/value DSN for a postgres connection (password quoted, never logged)."""
    c = get_connection(conn_id)
    parts = {
        "host": c.host or "localhost",
        "port": c.port or 5432,
        "user": c.login,
        "password": c.password,
        "dbname": dbname or c.schema or "postgres",
    }
    extra = c.extra_dejson or {}
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if extra.get(key):
            parts[key] = extra[key]
    return " ".join(f"{k}={_kv(v)}" for k, v in parts.items() if v not in (None, ""))


def catalog_sqlalchemy_url(conn_id: str = CATALOG_CONN_ID) -> str:
    c = get_connection(conn_id)
    auth = quote(c.login or "", safe="")
    if c.password:
        auth += ":" + quote(c.password, safe="")
    where = f"{c.host or 'localhost'}:{c.port or 5432}/{c.schema or 'hisops_catalog'}"
    return f"postgresql+psycopg2://{auth}@{where}"


def ssh_params(conn_id: str):
    """SshParams from an SSH connection (key file / private key path in extra, password in
    password)."""
    from hisops.targets.runner import SshParams

    c = get_connection(conn_id)
    extra = c.extra_dejson or {}
    return SshParams(
        host=c.host,
        port=int(c.port or 22),
        username=c.login,
        key_file=extra.get("key_file"),
        password=c.password or None,
        connect_timeout=float(extra.get("conn_timeout", 10)),
    )


def backup_encryption_key(backup_dir: Any) -> str | None:
    """The key of an encrypted backup (its manifest names the connection); None when the backup
    is not encrypted, its manifest is unreadable or the connection unusable (the restore or drill
    then reports it as the backup's or the configuration's fault)."""
    import logging
    from pathlib import Path

    from hisops.backup.manifest import ManifestError, load_manifest

    try:
        encryption = load_manifest(Path(backup_dir)).encryption
    except ManifestError:
        return None
    if encryption is None:
        return None
    try:
        return get_connection(encryption.key_conn_id).password or None
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and friends (lazy Airflow import)
        logging.getLogger(__name__).warning(
            "加密连接不可用 encryption connection %r not usable", encryption.key_conn_id
        )
        return None
