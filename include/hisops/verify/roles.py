"""Deep drills restore owners and privileges: the roles they need come from the backup's globals.

``fast`` drills restore data only (``--no-owner --no-privileges``). ``deep`` drills restore owners
and grants too, so a backup whose ACLs cannot be restored fails its drill. Roles the drill server
lacks are created from the backup's ``globals/globals.sql`` (as NOLOGIN, without passwords: a drill
never creates a login) and dropped again after the scratch database is gone.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def globals_roles(backup_dir: Path, manifest: Any, key: str | None) -> list[str] | None:
    """Role names defined in the backup's globals (None when the backup has no globals file)."""
    from hisops.backup.cluster_globals import role_names

    text = _globals_text(backup_dir, manifest, key)
    return None if text is None else list(role_names(text))


def _globals_text(backup_dir: Path, manifest: Any, key: str | None) -> str | None:
    entry = getattr(manifest, "globals_", None)
    if entry is None:
        return None
    path = backup_dir / entry.path
    if not path.name.endswith(".enc"):
        return path.read_text(encoding="utf-8", errors="replace")
    if not key:
        return None
    from hisops.backup.crypto import decrypt_file

    with tempfile.TemporaryDirectory(prefix=".hisops-globals-", dir=backup_dir.parent) as tmp:
        out = Path(tmp) / "globals.sql"
        decrypt_file(path, out, key)
        return out.read_text(encoding="utf-8", errors="replace")


def ensure_roles(server_dsn: str, roles: list[str]) -> list[str]:
    """Create the roles of ``roles`` missing on the server (NOLOGIN); returns those created."""
    from psycopg2 import sql

    from hisops.verify.scratch import admin_connection

    created = []
    with admin_connection(server_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (roles,))
        present = {r[0] for r in cur.fetchall()}
        for role in roles:
            if role not in present:
                cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                created.append(role)
    if created:
        log.info(
            "演练服务器缺少角色，已按备份的全局对象创建 "
            "created roles from the backup's globals: %s",
            created,
        )
    return created


def drop_roles(server_dsn: str, roles: list[str]) -> None:
    from psycopg2 import sql

    from hisops.verify.scratch import admin_connection

    if not roles:
        return
    with admin_connection(server_dsn) as conn, conn.cursor() as cur:
        for role in roles:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
