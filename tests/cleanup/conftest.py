"""Helpers for the cleanup tests: inventories with rules, trees of aged files, tree checksums."""

from __future__ import annotations

import hashlib
import os
import textwrap
import time
from pathlib import Path

import pytest
from hisops.inventory.loader import load_inventory
from hisops.targets.runner import LocalRunner, SshParams, SshRunner

DAY = 86400


def aged(path: Path, days: float, content: bytes | str = b"x" * 100) -> Path:
    """A file whose mtime is ``days`` in the past."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    then = time.time() - days * DAY
    os.utime(path, (then, then))
    return path


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under root → sha256 (files), 'link:<target>' (symlinks), 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = f"link:{os.readlink(p)}"
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{p.stat().st_mtime_ns}"
    return out


def inventory_with(tmp_path: Path, hosts: str, extra: str = ""):
    """An inventory whose system 'sys' has the given ``hosts:`` YAML (indented list items)."""
    text = textwrap.dedent("""\
        version: 1
        hospital: 测试医院
        maintenance_window: {start: "01:00", end: "05:00"}
        backup_storage: {path: %(t)s/backups}
        reports: {path: %(t)s/reports}
        %(extra)s
        systems:
          - id: sys
            name: 测试系统
            name_en: Test
            hosts:
        """) % {"t": tmp_path, "extra": extra}
    path = tmp_path / "inventory.yaml"
    path.write_text(text + textwrap.indent(textwrap.dedent(hosts), "      "))
    return load_inventory(path)


def ssh_runner(sshd, host_id: str = "h-ssh", port: int | None = None) -> SshRunner:
    return SshRunner(
        host_id,
        SshParams(
            host=sshd.host,
            port=port or sshd.port,
            username=sshd.user,
            key_file=str(sshd.client_key),
            connect_timeout=5,
        ),
    )


@pytest.fixture
def local_runner():
    return LocalRunner("h1")
