"""Inventory ``notifications:`` + Airflow connections → :class:`hisops.notify.Channel` list.

Called at task run time only (connections are resolved then, never at DAG parse time).
Items are duck-typed: anything with ``name, kind, conn_id, to, min_severity`` attributes
(the inventory models) or a mapping with those keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from hisops.notify.channels import Channel, ChannelConfigError, build_apprise_url

log = logging.getLogger(__name__)


def channels_from_inventory(notifications: Iterable[Any], *, strict: bool = True) -> list[Channel]:
    """One channel per inventory item, its credentials taken from the item's Airflow connection.

    With ``strict=False`` an item whose connection is missing or unusable is skipped with a
    warning (the other channels still get the alert); by default that raises
    :class:`ChannelConfigError` naming the channel and conn_id (never a secret).
    """
    channels = []
    for item in notifications:
        try:
            channels.append(channel_from_item(item))
        except ChannelConfigError as exc:
            if strict:
                raise
            log.warning("notification channel skipped: %s", exc)
    return channels


def channel_from_item(item: Any) -> Channel:
    name, kind, conn_id = _get(item, "name"), _get(item, "kind"), _get(item, "conn_id")
    to = list(_get(item, "to") or [])
    conn = _connection(name, conn_id)
    try:
        url = build_apprise_url(
            kind,
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            schema=conn.schema,
            extra=conn.extra_dejson or {},
            to=to,
        )
    except ChannelConfigError as exc:
        raise ChannelConfigError(f"channel {name!r} (connection {conn_id!r}): {exc}") from None
    return Channel(
        name=name, kind=kind, apprise_url=url, min_severity=_get(item, "min_severity") or "warn"
    )


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def _connection(name: str, conn_id: str) -> Any:
    from hisops.airflow.connections import get_connection

    try:
        return get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and friends (airflow stays a lazy import)
        raise ChannelConfigError(
            f"channel {name!r}: Airflow connection {conn_id!r} not usable ({type(exc).__name__})"
        ) from exc
