"""Names a restore creates: the staging database, the new database, the kept old production.

The staging database is ``hisops_restore_<db>_<backup>_<yymmddHHMMSS>_<4 hex>``: no production
database has such a name, and the teardown drops only names matching :data:`STAGING_RE` (the drop
itself goes through :func:`hisops.verify.scratch.drop_database`, which refuses anything else).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hisops.restore.errors import RestoreRefused
from hisops.verify.scratch import SCRATCH_PREFIX, scratch_name

STAGING_PREFIX = "hisops_restore_"
STAGING_RE = re.compile(
    rf"{STAGING_PREFIX}(?P<db>[a-z0-9_]{{1,20}})"
    r"_(?P<backup>[0-9]{1,10})_(?P<stamp>[0-9]{12})_[0-9a-f]{4}"
)
#: a new database name: a plain lowercase identifier of at most 63 bytes
NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED_PREFIXES = (SCRATCH_PREFIX, STAGING_PREFIX, "pg_", "template")


def staging_name(database_id: str, backup_id: int, now: datetime | None = None) -> str:
    """``hisops_restore_his_emr_42_250101010000_a1b2`` (at most 63 bytes)."""
    return scratch_name(database_id, backup_id, now, prefix=STAGING_PREFIX)


def is_staging_name(name: str) -> bool:
    return bool(STAGING_RE.fullmatch(name)) and len(name.encode()) <= 63


def default_new_name(database_id: str, backup_id: int, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M")
    base = re.sub(r"[^a-z0-9_]", "_", database_id.lower())[:30]
    return f"{base}_restored_{backup_id}_{stamp}"


def check_new_name(name: str, exists: bool) -> None:
    """Refuse a new database name that is not a plain identifier, is reserved or is taken."""
    if not NAME_RE.fullmatch(name) or name.startswith(RESERVED_PREFIXES):
        raise RestoreRefused(
            f"新数据库名无效：{name!r}",
            f"new database name {name!r} must be lowercase letters, digits and _ (≤ 63), "
            "starting with a letter or _, not a reserved prefix",
        )
    if exists:
        raise RestoreRefused(f"数据库 {name} 已存在", f"database {name!r} already exists")


def previous_name(production_db: str, now: datetime | None = None) -> str:
    """What the replaced production database is renamed to (kept until ops drop it)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"{production_db[:40]}_before_restore_{stamp}"
