"""Backup storage on disk: layout, preflight checks, work directories, atomic publish, leftovers.

A backup is built in ``<root>/.partial-<id>/`` while ``<root>/.partial-<id>.lock`` is held (flock);
after its manifest is written it is renamed to ``<root>/<YYYYmmddTHHMMSSZ>-<id>/`` (same file
system, atomic). A ``.partial-*`` whose lock nobody holds belongs to a crashed run: the next run
removes it. Directories are 0700 and files 0600 (backups hold patient data).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hisops.backup.manifest import (
    FILES_PREFIX,
    MANIFEST_NAME,
    PARTIAL_PREFIX,
    backup_dir_name,
    parse_backup_dir_name,
)

DIR_MODE = 0o700
FILE_MODE = 0o600
# compressed pg_dump output is typically 15-40 % of pg_database_size (indexes are not dumped)
DEFAULT_SIZE_FACTOR = {True: 0.6, False: 1.1}  # compressed?
DEFAULT_RESERVE_BYTES = 64 * 1024 * 1024


class StorageError(RuntimeError):
    """The backup directory cannot take this backup (unwritable, full, not a directory)."""


@dataclass(frozen=True)
class Leftover:
    path: Path
    backup_id: int | None


def target_root(storage: str | Path, target_id: str, kind: str = "database") -> Path:
    """``<storage>/<database_id>`` or ``<storage>/_files/<host_id>``."""
    base = Path(storage)
    return base / target_id if kind == "database" else base / FILES_PREFIX / target_id


def final_dir(root: Path, created_at: datetime, backup_id: int) -> Path:
    return root / backup_dir_name(created_at, backup_id)


def partial_dir(root: Path, backup_id: int) -> Path:
    return root / f"{PARTIAL_PREFIX}{backup_id}"


def make_dirs(path: Path) -> None:
    """mkdir -p with 0700 for what we create (umask-proof)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)


# --- preflight --------------------------------------------------------------------------------


def estimate_bytes(database_size: int, compress: int, encrypt: bool) -> int:
    """Free space a dump of a database of ``database_size`` bytes may need (encryption: + one copy
    of the largest file at a time, estimated as a quarter of the total)."""
    need = int(database_size * DEFAULT_SIZE_FACTOR[compress > 0])
    return need + (need // 4 if encrypt else 0)


def preflight(root: Path, needed_bytes: int, reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> int:
    """Check before pg_dump starts: ``root`` is a writable directory
    with room; returns free bytes."""
    ensure_writable(root)
    return check_space(root, needed_bytes, reserve_bytes)


def ensure_writable(root: Path) -> None:
    """Create ``root`` (0700) if needed and prove a file can be written and synced in it."""
    try:
        make_dirs(root)
    except OSError as exc:
        raise StorageError(
            f"备份目录无法创建 cannot create backup directory {root}: {exc.strerror or exc}"
        ) from exc
    if not root.is_dir():
        raise StorageError(f"备份路径不是目录 backup path is not a directory: {root}")
    _probe_write(root)


def check_space(root: Path, needed_bytes: int, reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> int:
    """Free bytes in ``root``; StorageError when fewer than ``needed_bytes`` + ``reserve_bytes``."""
    free = shutil.disk_usage(root).free
    if free - reserve_bytes < needed_bytes:
        raise StorageError(
            f"备份目录空间不足 not enough free space in {root}: {_mb(free)} free, "
            f"about {_mb(needed_bytes)} needed (+{_mb(reserve_bytes)} reserve) — 请清理或扩容 "
            "free space (run backup_retention) or enlarge the volume"
        )
    return free


def _probe_write(root: Path) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=root)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        why = (
            "只读 read-only"
            if exc.errno == errno.EROFS
            else ("已满 full" if exc.errno == errno.ENOSPC else "")
        )
        raise StorageError(
            f"备份目录不可写{why} backup directory not writable: {root}: {exc.strerror or exc}"
        ) from exc


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"


# --- work directory and publish ---------------------------------------------------------------


@contextmanager
def work_dir(root: Path, backup_id: int) -> Iterator[Path]:
    """``.partial-<id>`` with its lock held; removed on any exception (the run failed)."""
    lock_path = root / f"{PARTIAL_PREFIX}{backup_id}.lock"
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        work = partial_dir(root, backup_id)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(mode=DIR_MODE)
        os.chmod(work, DIR_MODE)
        try:
            yield work
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    finally:
        os.close(fd)
        lock_path.unlink(missing_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Write a file 0600 and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def tighten(path: Path) -> None:
    """Make a tree written by another program (pg_dump) 0700 dirs / 0600 files."""
    os.chmod(path, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(path):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), DIR_MODE)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), FILE_MODE)


def fsync_tree(path: Path) -> None:
    for dirpath, _dirs, filenames in os.walk(path):
        for f in filenames:
            _fsync(os.path.join(dirpath, f), os.O_RDONLY)
        _fsync(dirpath, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(work: Path, final: Path) -> Path:
    """Atomically rename the finished work directory into place (manifest must be in it)."""
    if not (work / MANIFEST_NAME).is_file():
        raise StorageError(f"清单缺失，拒绝发布 refusing to publish without manifest: {work}")
    if final.exists():
        raise StorageError(f"目标已存在 backup directory already exists: {final}")
    os.rename(work, final)
    _fsync(str(final.parent), os.O_RDONLY | os.O_DIRECTORY)
    return final


def unpublish(final: Path, root: Path, backup_id: int) -> None:
    """Undo ``publish`` (the catalog could not record the backup): rename back and delete."""
    if final.exists():
        back = partial_dir(root, backup_id)
        os.rename(final, back)
        shutil.rmtree(back, ignore_errors=True)


# --- leftovers and listing --------------------------------------------------------------------


def find_leftovers(root: Path) -> list[Leftover]:
    """``.partial-<id>`` directories whose lock nobody holds (crashed or killed runs)."""
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.glob(f"{PARTIAL_PREFIX}*")):
        if path.suffix == ".lock" or not path.is_dir():
            continue
        ident = path.name[len(PARTIAL_PREFIX) :]
        backup_id = int(ident) if ident.isdigit() else None
        if backup_id is None or not _locked(root / f"{path.name}.lock"):
            out.append(Leftover(path, backup_id))
    return out


def _locked(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def remove_leftovers(root: Path) -> list[Leftover]:
    """Remove leftovers of crashed runs (and their stale lock files); returns what was removed."""
    found = find_leftovers(root)
    for item in found:
        shutil.rmtree(item.path, ignore_errors=True)
        (root / f"{item.path.name}.lock").unlink(missing_ok=True)
    return found


def backup_dirs(root: Path) -> dict[int, Path]:
    """Published backups under ``root`` by backup id (name parses and manifest.json exists)."""
    if not root.is_dir():
        return {}
    out = {}
    for path in root.iterdir():
        parsed = parse_backup_dir_name(path.name)
        if parsed and path.is_dir() and not path.is_symlink() and (path / MANIFEST_NAME).is_file():
            out[parsed[1]] = path
    return out


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
