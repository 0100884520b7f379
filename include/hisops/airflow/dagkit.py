"""What every hisops DAG shares: owner, retries, start date, map label, pools, parse-time inventory.

Import-cheap on purpose (DAG files import it at parse time): no DB drivers, no GX, no pandas.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

OWNER = "hisops"
TIMEZONE = ZoneInfo("Asia/Shanghai")
START_DATE = datetime(2026, 1, 1, tzinfo=TIMEZONE)

#: ``map_index_template`` of mapped tasks: the label the task sets with
#: ``hisops.airflow.context.set_label`` (its database / host / server id)
MAP_LABEL = "{{ hisops_label | default('?') }}"

#: Airflow pools (created by ``hisops.airflow.pools.ensure_pools``; DAGs name them with these)
POOL_INSPECTION = "hisops_inspection"  # how many systems are inspected at once
POOL_BACKUP = "hisops_backup"  # concurrent pg_dump / file / pgBackRest backups
POOL_VERIFICATION = "hisops_verification"  # concurrent restore drills


def default_args(retries: int = 1, retry_minutes: int = 5) -> dict[str, Any]:
    return {"owner": OWNER, "retries": retries, "retry_delay": timedelta(minutes=retry_minutes)}


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int):  # mtime in the key: a changed file is re-read
    from hisops.inventory.loader import load_inventory

    return load_inventory(Path(path))


def parse_time_inventory():
    """The inventory, read from the local file at parse time (no network, no DB).

    An invalid inventory raises InventoryError whose message (file: field path: problem)
    becomes the DAG's import error in the Airflow UI.
    """
    from hisops.inventory.loader import default_inventory_path

    path = default_inventory_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return _load(str(path), mtime)
