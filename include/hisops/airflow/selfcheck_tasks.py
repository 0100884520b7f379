"""Adapters of the 自检 self-check DAG: context → plain arguments → one service call.

The probing, recording and verdict are in :mod:`hisops.selfcheck.service`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hisops.airflow import runtime
from hisops.airflow.context import run_info


def read_inventory() -> str:
    from hisops.selfcheck.service import read_inventory as read

    return read(runtime.inventory())


def probe_databases() -> list[dict]:
    from hisops.selfcheck.service import probe_databases as probe

    return probe(runtime.inventory(), runtime.dsn_for)


def probe_hosts() -> list[dict]:
    from hisops.selfcheck.service import probe_hosts as probe

    return probe(runtime.inventory(), runtime.runner_for)


def record(databases: list[dict], hosts: list[dict], context: Mapping[str, Any]) -> dict:
    """One self-check row and an audit event in the catalog; returns the summary."""
    from hisops.selfcheck.service import record as record_run

    return record_run(runtime.catalog(), databases, hosts, run_info(context))


def verdict(summary: dict) -> str:
    """Fail the run (red in the UI) when any target is unreachable, naming them."""
    from hisops.selfcheck.service import verdict as judge

    return judge(summary)
