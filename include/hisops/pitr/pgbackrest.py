"""Calling pgBackRest: one command line builder, local or over the host's command runner.

Locally, pgBackRest runs as the OS user PostgreSQL runs as (``runuser -u postgres`` when we are
root, as ``devenv/pgcluster.py`` does); the database password, when one is needed, travels in the
environment (``PGPASSWORD``), never on the command line. Over SSH the login user must be that user
or may ``sudo -n -u`` to it, and the server must accept the local socket without a password (peer).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hisops.targets.postgres import as_os_user
from hisops.targets.runner import CommandResult

if TYPE_CHECKING:
    from hisops.pitr.config import ServerConfig
    from hisops.targets.runner import CommandRunner

BINARY = "pgbackrest"
DEFAULT_TIMEOUT = 6 * 3600.0


class PgBackRestError(RuntimeError):
    """A pgBackRest command failed; the message carries its own error lines."""


@dataclass(frozen=True)
class PhysicalBackup:
    """One backup as ``pgbackrest info --output=json`` lists it."""

    label: str
    type: str  # full | diff | incr
    prior: str | None
    started_at: datetime
    finished_at: datetime
    lsn_start: str | None
    lsn_stop: str | None
    wal_start: str | None
    wal_stop: str | None
    size: int
    repo_size: int
    error: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class StanzaInfo:
    status_code: int
    status_message: str
    backups: tuple[PhysicalBackup, ...]
    wal_min: str | None
    wal_max: str | None


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def parse_backup(entry: dict[str, Any]) -> PhysicalBackup:
    archive, lsn, info = entry.get("archive") or {}, entry.get("lsn") or {}, entry.get("info") or {}
    return PhysicalBackup(
        label=entry["label"],
        type=entry["type"],
        prior=entry.get("prior"),
        started_at=_ts(entry["timestamp"]["start"]),
        finished_at=_ts(entry["timestamp"]["stop"]),
        lsn_start=lsn.get("start"),
        lsn_stop=lsn.get("stop"),
        wal_start=archive.get("start"),
        wal_stop=archive.get("stop"),
        size=int(info.get("size") or 0),
        repo_size=int((info.get("repository") or {}).get("delta") or 0),
        error=bool(entry.get("error")),
        raw=entry,
    )


def parse_info(text: str, stanza: str) -> StanzaInfo:
    """The stanza's part of ``pgbackrest info --output=json``."""
    data = json.loads(text or "[]")
    mine = next((s for s in data if s.get("name") == stanza), None)
    if mine is None:
        return StanzaInfo(-1, "stanza not in info output", (), None, None)
    archives = mine.get("archive") or []
    current = archives[-1] if archives else {}
    backups = tuple(parse_backup(b) for b in mine.get("backup") or [])
    status = mine.get("status") or {}
    return StanzaInfo(
        int(status.get("code", -1)),
        str(status.get("message", "")),
        backups,
        current.get("min"),
        current.get("max"),
    )


def exit_text(rc: int) -> str:
    """``exit N``, naming the signal when one killed the process: ``-N`` from subprocess, ``128+N``
    from runuser, sudo or a shell (pgBackRest's own error codes are below 128)."""
    number = -rc if rc < 0 else rc - 128 if rc > 128 else 0
    try:
        name = signal.Signals(number).name if number else ""
    except ValueError:
        name = ""
    if not name:
        return f"exit {rc}"
    return f"exit {rc}, 被信号 {name} 终止 killed by signal {name} ({number})"


def error_lines(result: CommandResult) -> str:
    """pgBackRest's ERROR/WARN lines (its console log), else the tail of its output."""
    text = f"{result.stdout}\n{result.stderr}"
    picked = [ln.strip() for ln in text.splitlines() if " ERROR: " in ln or ln.startswith("ERROR")]
    return "; ".join(picked)[-1500:] or text.strip()[-1500:] or exit_text(result.rc)


@dataclass
class PgBackRest:
    """pgBackRest for one server's stanza and hisops-written config."""

    cfg: ServerConfig
    os_user: str = "postgres"
    runner: CommandRunner | None = None  # None: this machine
    password: str | None = field(default=None, repr=False)
    ssh_user: str | None = None

    def argv(self, command: str, *options: str) -> list[str]:
        return [
            BINARY,
            f"--config={self.cfg.path}",
            f"--stanza={self.cfg.stanza}",
            *options,
            command,
        ]

    def local_argv(self, command: str, *options: str) -> list[str]:
        return as_os_user(self.argv(command, *options), self.os_user)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PGAPPNAME": "hisops-pgbackrest"}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def run(self, command: str, *options: str, timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
        if self.runner is not None:
            line = shlex.join(self.argv(command, *options))
            if self.ssh_user and self.ssh_user != self.os_user:
                line = f"sudo -n -u {shlex.quote(self.os_user)} {line}"
            return self.runner.run(line, timeout=timeout)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                self.local_argv(command, *options),
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return CommandResult(
                124, "", f"timed out after {timeout:.0f}s", time.monotonic() - start
            )
        return CommandResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def checked(
        self, command: str, *options: str, timeout: float = DEFAULT_TIMEOUT
    ) -> CommandResult:
        result = self.run(command, *options, timeout=timeout)
        if not result.ok:
            raise PgBackRestError(
                f"pgbackrest {command} 失败 failed ({exit_text(result.rc)}): {error_lines(result)}"
            )
        return result

    def info(self) -> StanzaInfo:
        result = self.run("info", "--output=json", timeout=300)
        if not result.ok:
            raise PgBackRestError(
                f"pgbackrest info 失败 failed ({exit_text(result.rc)}): {error_lines(result)}"
            )
        return parse_info(result.stdout, self.cfg.stanza)
