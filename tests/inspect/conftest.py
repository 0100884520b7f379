"""Helpers for the inspection tests: inventory objects, threshold overrides, extra connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from hisops.inventory.models import Database, Endpoint, Host, System
from hisops.inventory.thresholds import LevelOverride, ThresholdOverrides, Thresholds


def thresholds(**levels: dict[str, float | None]) -> Thresholds:
    """Defaults with some levels overridden, the way the inventory does it (validated)."""
    overrides = ThresholdOverrides(**{name: LevelOverride(**lv) for name, lv in levels.items()})
    return Thresholds().merged(overrides)


def system(**targets: Any) -> System:
    return System(id="outpatient", name="门诊系统", name_en="Outpatient", **targets)


def database(db_id: str = "his_db") -> Database:
    return Database(id=db_id, conn_id="his_db")


def host(**kw: Any) -> Host:
    kw.setdefault("id", "his-app")
    if "ssh_conn_id" not in kw:
        kw.setdefault("local", True)
    return Host(**kw)


def endpoint(url: str, **kw: Any) -> Endpoint:
    return Endpoint(id=kw.pop("id", "his-web"), url=url, **kw)


def by_id(findings: list[Any]) -> dict[str, Any]:
    out = {f.check_id: f for f in findings}
    assert len(out) == len(findings), f"duplicate check ids: {[f.check_id for f in findings]}"
    return out


@pytest.fixture
def conns(pg) -> Iterator[Any]:
    """Factory for extra autocommit connections to a database of the
    test cluster, closed afterwards."""
    opened: list[Any] = []

    def connect(dbname: str, autocommit: bool = True) -> Any:
        conn = psycopg2.connect(pg.dsn(dbname))
        conn.autocommit = autocommit
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        try:
            conn.cancel()
            conn.close()
        except psycopg2.Error:
            pass
