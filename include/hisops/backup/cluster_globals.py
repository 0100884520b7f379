"""集群全局对象 Cluster globals beside every logical backup: ``pg_dumpall --globals-only``.

A database dump holds no roles; restored onto a new server its owners and grants would point at
nobody. Every backup therefore saves ``globals/globals.sql`` (roles, memberships, tablespaces).
Role passwords (hashes) are left out (``--no-role-passwords``) unless the backup is encrypted; if
the source refuses to show them (not a superuser), they are left out and the manifest says so.
The deep restore drill creates roles it lacks from this file (``hisops.verify.drill``).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hisops.backup.manifest import GLOBALS_DIR, GLOBALS_FILE

CREATE_ROLE_RE = re.compile(r'^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);$', re.MULTILINE)
TIMEOUT_SECONDS = 300


class GlobalsError(RuntimeError):
    """pg_dumpall --globals-only failed."""


@dataclass(frozen=True)
class SavedGlobals:
    path: Path
    role_passwords: bool
    roles: tuple[str, ...]
    note: str | None = None


def role_names(sql_text: str) -> tuple[str, ...]:
    """Role names created by a globals script (quoted identifiers unquoted)."""
    out = []
    for raw in CREATE_ROLE_RE.findall(sql_text):
        out.append(raw[1:-1].replace('""', '"') if raw.startswith('"') else raw)
    return tuple(out)


def pg_dumpall_argv(tool: Path, conninfo: str, out: Path, passwords: bool) -> list[str]:
    argv = [str(tool), "--globals-only", "--no-password", f"--dbname={conninfo}", f"--file={out}"]
    return argv if passwords else [*argv, "--no-role-passwords"]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )


def save(
    pg_dump: Path, conninfo: str, env: dict[str, str], work: Path, encrypted: bool
) -> SavedGlobals:
    """Write ``work/globals/globals.sql`` with the pg_dumpall next to ``pg_dump``."""
    tool = pg_dump.with_name("pg_dumpall")
    if not tool.exists():
        raise GlobalsError(f"找不到 pg_dumpall not found next to {pg_dump}")
    folder = work / GLOBALS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    out = folder / GLOBALS_FILE
    note = None
    proc = _run(pg_dumpall_argv(tool, conninfo, out, encrypted), env)
    if proc.returncode != 0 and encrypted and "permission denied" in proc.stderr.lower():
        note = (
            "源库用户无权读取口令，未保存口令 source user may not read password hashes: saved "
            "without them"
        )
        encrypted = False
        proc = _run(pg_dumpall_argv(tool, conninfo, out, False), env)
    if proc.returncode != 0:
        raise GlobalsError(
            f"pg_dumpall --globals-only 失败 failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-1000:] or 'no message'}"
        )
    out.chmod(0o600)
    return SavedGlobals(
        out, encrypted, role_names(out.read_text(encoding="utf-8", errors="replace")), note
    )
