"""Stand-in for ``hisops.backup.trust.last_restorable`` (issue 8) until it is on main; same signature.

The newest verified, not deleted backup whose directory still exists. Deleted after rebasing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def last_restorable(repo: Any, inventory: Any, database_id: str, max_age: timedelta | None = None,
                    **_: Any) -> Any:
    del inventory
    for record in repo.backups_for(database_id, states=("verified",)):
        if record.kind == "database" and record.path and Path(record.path).is_dir():
            finished = record.finished_at or record.started_at
            if max_age is not None and finished < datetime.now(UTC) - max_age:
                return None
            return record
    return None
