"""Before pgBackRest is trusted with a server: data directory, WAL archiving settings, stanza.

hisops never edits a production server's configuration: when ``archive_mode`` / ``archive_command``
/ ``wal_level`` are not what pgBackRest needs, the problem says exactly what to set (the SQL to run
and whether a restart is needed). A wrong data directory or stanza in the inventory gives one clear
message naming the inventory field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hisops.inventory.models import PgServer
    from hisops.pitr.pgbackrest import PgBackRest

STANZA_RE = re.compile(r"--stanza[= ]([A-Za-z0-9_.-]+)")
SETTINGS = (
    "data_directory",
    "archive_mode",
    "archive_command",
    "wal_level",
    "archive_timeout",
    "server_version_num",
)


class PreflightError(RuntimeError):
    """The server is not ready for pgBackRest; the message says what to change."""


@dataclass(frozen=True)
class Preflight:
    server_id: str
    problems: tuple[str, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise PreflightError(
                f"服务器 {self.server_id} 未就绪 server not ready for pgBackRest: "
                + " | ".join(self.problems)
            )


def archive_command(server: PgServer) -> str:
    """The archive_command pgBackRest needs for this server (with hisops' config file)."""
    pitr = server.pitr
    assert pitr is not None
    return f"pgbackrest --config={pitr.config_path} --stanza={pitr.stanza} archive-push %p"


def read_settings(dsn: str) -> dict[str, str]:
    from hisops.targets.postgres import pg_session

    with pg_session(dsn, target="pitr-preflight") as conn, conn.cursor() as cur:
        cur.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),))
        return {name: setting for name, setting in cur.fetchall()}


def check_settings(server: PgServer, settings: dict[str, str], where: str = "") -> list[str]:
    """Problems with the server's own settings (pure: unit-testable)."""
    problems: list[str] = []
    actual = settings.get("data_directory")
    if actual and os.path.realpath(actual) != os.path.realpath(server.data_directory):
        problems.append(
            f"{where}data_directory: 清单写的是 inventory says {server.data_directory!r}, "
            f"服务器报告 the server reports {actual!r} — correct the inventory"
        )
    wanted = archive_command(server)
    if settings.get("wal_level") not in ("replica", "logical"):
        problems.append(
            f"wal_level = {settings.get('wal_level')!r}: 请设置 set "
            "ALTER SYSTEM SET wal_level = 'replica'; (需要重启 restart needed)"
        )
    if settings.get("archive_mode") not in ("on", "always"):
        problems.append(
            f"archive_mode = {settings.get('archive_mode')!r}: 请设置 set "
            "ALTER SYSTEM SET archive_mode = 'on'; (需要重启 restart needed)"
        )
    current = settings.get("archive_command", "").strip()
    other = STANZA_RE.search(current) if "pgbackrest" in current else None
    if other and other.group(1) != server.pitr.stanza:
        problems.append(
            f"{where}pitr.stanza: 清单写的是 inventory says {server.pitr.stanza!r}, 服务器归档到 "
            f"the server archives to stanza {other.group(1)!r} (archive_command) — "
            "correct the inventory"
        )
    elif current != wanted:
        problems.append(
            f"archive_command = {settings.get('archive_command')!r}: 请设置 set "
            f"ALTER SYSTEM SET archive_command = '{wanted}'; SELECT pg_reload_conf();"
        )
    return problems


def stanza_problem(server: PgServer, message: str, where: str = "") -> str:
    pitr = server.pitr
    assert pitr is not None
    lowered = message.lower()
    if "does not exist" in lowered or "missing stanza" in lowered or "stanza-create" in lowered:
        return (
            f"{where}pitr.stanza: 仓库中没有 stanza {pitr.stanza!r} the repository has no stanza "
            f"{pitr.stanza!r} ({message})"
        )
    if "pg1-path" in lowered or "data_directory" in lowered or "does not match" in lowered:
        return (
            f"{where}data_directory: pgBackRest 不认可数据目录 "
            f"pgBackRest rejects the data directory: {message}"
        )
    return f"pgbackrest check 失败 failed: {message}"


def preflight(
    server: PgServer, dsn: str, pgbr: PgBackRest, *, create_stanza: bool = True, where: str = ""
) -> Preflight:
    """Settings, then stanza-create (idempotent; creating a stanza touches only the repository)
    and ``pgbackrest check`` (which also proves WAL reaches the repository)."""
    from hisops.pitr.pgbackrest import error_lines

    settings = read_settings(dsn)
    problems = check_settings(server, settings, where)
    if problems:
        return Preflight(server.id, tuple(problems), settings)
    if create_stanza:
        created = pgbr.run("stanza-create", timeout=300)
        if not created.ok:
            return Preflight(
                server.id, (stanza_problem(server, error_lines(created), where),), settings
            )
    checked = pgbr.run("check", timeout=300)
    if not checked.ok:
        return Preflight(
            server.id, (stanza_problem(server, error_lines(checked), where),), settings
        )
    return Preflight(server.id, (), settings)
