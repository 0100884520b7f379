"""pgBackRest configuration written from the inventory (one file per server, owned by hisops).

The file lives at the server's ``pitr.config_path`` (0600, directory 0700, owned by the OS user
PostgreSQL runs as, because ``archive_command`` runs as that user) and every hisops call passes it
with ``--config``; nothing else on the host is touched. Lock, log and spool directories sit beside
it. No secret is written: pgBackRest reaches PostgreSQL through its unix socket (peer or password
from the environment of the call).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hisops.inventory.models import PgServer

DIR_MODE, FILE_MODE = 0o700, 0o600


@dataclass(frozen=True)
class ServerConfig:
    """What hisops needs to call pgBackRest for one server."""

    server_id: str
    stanza: str
    path: Path  # the config file
    text: str

    @property
    def folder(self) -> Path:
        return self.path.parent


def render(server: PgServer, pg_user: str | None = None, port: int | None = None) -> ServerConfig:
    """The configuration text for ``server`` (must have a ``pitr:`` block); ``port``: the server's
    port when the inventory leaves it to the connection."""
    pitr = server.pitr
    if pitr is None:
        raise ValueError(f"server {server.id!r} has no pitr: block")
    path = Path(pitr.config_path)
    folder = path.parent
    lines = [
        "# written by hisops from the inventory — do not edit by hand (hisops rewrites it)",
        "[global]",
        f"repo1-path={pitr.repo.path}",
        f"repo1-retention-full={pitr.retention.full}",
    ]
    if pitr.retention.diff:
        lines.append(f"repo1-retention-diff={pitr.retention.diff}")
    if pitr.repo.kind == "sftp":
        lines += [
            "repo1-type=sftp",
            f"repo1-sftp-host={pitr.repo.sftp_host}",
            f"repo1-sftp-host-user={pitr.repo.sftp_user}",
            f"repo1-sftp-private-key-file={pitr.repo.sftp_private_key_file}",
            "repo1-sftp-host-key-check-type=none",
        ]
    lines += [
        f"compress-type={pitr.compress_type}",
        f"process-max={pitr.process_max}",
        "start-fast=y",
        "log-level-console=info",
        "log-level-file=info",
        f"log-path={folder / 'log'}",
        f"lock-path={folder / 'lock'}",
        f"spool-path={folder / 'spool'}",
        "",
        f"[{pitr.stanza}]",
        f"pg1-path={server.data_directory}",
        f"pg1-port={server.port or port or 5432}",
        f"pg1-socket-path={pitr.socket_dir}",
    ]
    if pg_user:
        lines.append(f"pg1-user={pg_user}")
    return ServerConfig(server.id, pitr.stanza, path, "\n".join(lines) + "\n")


def _owner(os_user: str) -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(os_user)
    return pw.pw_uid, pw.pw_gid


def write_local(cfg: ServerConfig, os_user: str) -> Path:
    """Write the file on this machine (0600, dirs 0700, owned by ``os_user`` when we are root)."""
    owner = _owner(os_user)
    for d in (cfg.folder, cfg.folder / "log", cfg.folder / "lock", cfg.folder / "spool"):
        d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(d, DIR_MODE)
        if owner:
            os.chown(d, *owner)
    tmp = cfg.path.with_name(cfg.path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, cfg.text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, cfg.path)
    return cfg.path


def write_command(cfg: ServerConfig) -> str:
    """A shell command that writes the file on a remote host (run as the PostgreSQL OS user)."""
    import shlex

    folder = shlex.quote(str(cfg.folder))
    target = shlex.quote(str(cfg.path))
    dirs = " ".join(shlex.quote(str(cfg.folder / d)) for d in ("log", "lock", "spool"))
    return (
        f"umask 077 && mkdir -p {folder} {dirs} && chmod 700 {folder} && "
        f"cat > {target}.tmp <<'HISOPS_EOF'\n{cfg.text}HISOPS_EOF\n"
        f"chmod 600 {target}.tmp && mv {target}.tmp {target}"
    )


def ensure_repo_dir(server: PgServer) -> None:
    """A local repository path: create it 0700 for the PostgreSQL OS user (pgBackRest writes)."""
    pitr = server.pitr
    if pitr is None or pitr.repo.kind != "path":
        return
    repo = Path(pitr.repo.path)
    owner = _owner(pitr.os_user)
    if not repo.exists():
        repo.mkdir(mode=DIR_MODE, parents=True)
        if owner:
            os.chown(repo, *owner)
