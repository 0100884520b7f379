"""Airflow pools hisops needs (bounded concurrency on a small machine and on production).

`ensure_pools()` is called by the demo bootstrap and by `hisops roles sync`-style deployment
steps; DAGs refer to pools by these names.
"""

from __future__ import annotations

from hisops.airflow.dagkit import POOL_BACKUP, POOL_INSPECTION, POOL_VERIFICATION

# name -> (slots, description)
POOLS: dict[str, tuple[int, str]] = {
    POOL_INSPECTION: (4, "巡检并发 concurrent inspection groups"),
    POOL_BACKUP: (2, "备份并发 concurrent pg_dump / file backups"),
    POOL_VERIFICATION: (1, "恢复演练并发 concurrent restore drills"),
}


def ensure_pools() -> list[str]:
    """Create missing pools (existing ones keep the slots ops may have tuned)."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    lines = []
    with create_session() as session:
        for name, (slots, description) in POOLS.items():
            if session.query(Pool).filter(Pool.pool == name).one_or_none() is None:
                session.add(
                    Pool(pool=name, slots=slots, description=description, include_deferred=False)
                )
                lines.append(f"pool {name}: created with {slots} slots")
            else:
                lines.append(f"pool {name}: exists")
    return lines
