"""维护前备份 A verified backup of the database, young enough, whose files
exist (第八条: back up first).

Which backup counts is decided by the backup capability (``last_restorable``: verified, files and
manifest present — vanished ones are marked ``missing`` there); this module only judges its age.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hisops.safeguards.verdict import Verdict

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory

SAFEGUARD = "fresh_backup"
DEFAULT_MAX_AGE = timedelta(hours=24)


def _last_restorable(repo: CatalogRepository, inventory: Inventory, database_id: str):
    from hisops.backup.trust import last_restorable

    return last_restorable(repo, inventory, database_id, max_age=None, actor="db_maintenance")


def check_fresh_backup(
    repo: CatalogRepository,
    inventory: Inventory,
    database_id: str,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    now: datetime | None = None,
) -> Verdict:
    """ok when the newest restorable verified backup finished less than ``max_age`` ago."""
    now = now or datetime.now(UTC)
    hours = max_age.total_seconds() / 3600
    record = _last_restorable(repo, inventory, database_id)
    if record is None:
        return Verdict(
            SAFEGUARD,
            False,
            f"{database_id} 没有可恢复的已校验备份（需 {hours:g} 小时内）",
            f"{database_id} has no verified backup whose files exist (needed: younger than "
            f"{hours:g} h); run db_backup and backup_verification first",
        )
    finished = record.finished_at or record.started_at
    age_h = (now - finished).total_seconds() / 3600
    details = {
        "backup_id": record.id,
        "finished_at": finished.isoformat(),
        "age_hours": round(age_h, 2),
    }
    if now - finished > max_age:
        return Verdict(
            SAFEGUARD,
            False,
            f"{database_id} 最近的已校验备份 #{record.id} 已有 {age_h:.1f} 小时（上限 {hours:g} "
            "小时）",
            f"the newest verified backup #{record.id} of {database_id} is {age_h:.1f} h old "
            f"(limit {hours:g} h); run db_backup and backup_verification first",
            details,
        )
    return Verdict(
        SAFEGUARD,
        True,
        f"已校验备份 #{record.id}，{age_h:.1f} 小时前",
        f"verified backup #{record.id}, {age_h:.1f} h old",
        details,
    )
