"""异地备份 Off-site copy of a finished backup: a second path, or SFTP over an SSH connection.

The copy mirrors the local layout (``<offsite.path>/<database_id>/<stamp>-<id>/``), is built in a
``.partial-<id>`` directory, every file is read back from the destination and its SHA-256 compared
with the manifest, the manifest goes last, then the directory is renamed into place. A re-run finds
a complete copy and only re-checks it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from hisops.backup import storage
from hisops.backup.manifest import CHUNK, MANIFEST_NAME, PARTIAL_PREFIX, load_manifest, sha256_file

log = logging.getLogger(__name__)


class OffsiteError(RuntimeError):
    """The off-site copy failed or does not match the manifest."""


@dataclass(frozen=True)
class OffsiteResult:
    kind: str
    destination: str
    files: int
    bytes: int
    seconds: float
    already_present: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Destination(Protocol):
    kind: str

    def makedirs(self, path: str) -> None: ...
    def exists(self, path: str) -> bool: ...
    def open_write(self, path: str) -> BinaryIO: ...
    def open_read(self, path: str) -> BinaryIO: ...
    def rename(self, src: str, dst: str) -> None: ...
    def rmtree(self, path: str) -> None: ...
    def display(self, path: str) -> str: ...


class PathDestination:
    """A second local or mounted path (NAS, another disk)."""

    kind = "path"

    def makedirs(self, path: str) -> None:
        storage.make_dirs(Path(path))

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def open_write(self, path: str) -> BinaryIO:
        return os.fdopen(
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, storage.FILE_MODE), "wb"
        )

    def open_read(self, path: str) -> BinaryIO:
        return open(path, "rb")  # noqa: SIM115 - caller closes

    def rename(self, src: str, dst: str) -> None:
        storage.fsync_tree(Path(src))
        os.rename(src, dst)

    def rmtree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def display(self, path: str) -> str:
        return path


class SftpDestination:
    """A remote directory over SFTP (paramiko), through an SSH connection of the runner."""

    kind = "sftp"

    def __init__(self, sftp: Any, host: str) -> None:
        self.sftp, self.host = sftp, host

    def makedirs(self, path: str) -> None:
        parts = PurePosixPath(path).parts
        for i in range(1, len(parts) + 1):
            p = str(PurePosixPath(*parts[:i]))
            if not self.exists(p):
                self.sftp.mkdir(p, mode=storage.DIR_MODE)

    def exists(self, path: str) -> bool:
        try:
            self.sftp.lstat(path)
            return True
        except FileNotFoundError:
            return False

    def open_write(self, path: str) -> BinaryIO:
        fh = self.sftp.open(path, "wb", bufsize=CHUNK)
        fh.set_pipelined(True)
        self.sftp.chmod(path, storage.FILE_MODE)
        return fh

    def open_read(self, path: str) -> BinaryIO:
        fh = self.sftp.open(path, "rb", bufsize=CHUNK)
        fh.prefetch()
        return fh

    def rename(self, src: str, dst: str) -> None:
        self.sftp.posix_rename(src, dst)

    def rmtree(self, path: str) -> None:
        if not self.exists(path):
            return
        for entry in self.sftp.listdir_attr(path):
            child = f"{path}/{entry.filename}"
            if stat.S_ISDIR(entry.st_mode):
                self.rmtree(child)
            else:
                self.sftp.remove(child)
        self.sftp.rmdir(path)

    def display(self, path: str) -> str:
        return f"sftp://{self.host}{path}"


# --- copy and check ---------------------------------------------------------------------------


def _copy(src: Path, dest: Destination, path: str) -> int:
    with open(src, "rb") as fin, dest.open_write(path) as fout:
        size = 0
        while piece := fin.read(CHUNK):
            fout.write(piece)
            size += len(piece)
    return size


def _remote_sha256(dest: Destination, path: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with dest.open_read(path) as fh:
        while piece := fh.read(CHUNK):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()


def check_copy(dest: Destination, remote_dir: str, local_dir: Path) -> list[str]:
    """Read every file back from the destination; problems when size or SHA-256 differ."""
    manifest = load_manifest(local_dir)
    expected = {f.path: (f.size, f.sha256) for f in manifest.files}
    expected[MANIFEST_NAME] = sha256_file(local_dir / MANIFEST_NAME)
    problems = []
    for rel, want in sorted(expected.items()):
        path = f"{remote_dir}/{rel}"
        if not dest.exists(path):
            problems.append(f"异地副本缺文件 off-site copy missing: {rel}")
        elif _remote_sha256(dest, path) != want:
            problems.append(f"异地副本校验和不符 off-site checksum mismatch: {rel}")
    return problems


def _files(local_dir: Path) -> Iterator[Path]:
    manifest = load_manifest(local_dir)
    yield from (local_dir / f.path for f in manifest.files)
    yield local_dir / MANIFEST_NAME  # last


def copy_backup(
    local_dir: Path, storage_root: Path, dest: Destination, dest_root: str
) -> OffsiteResult:
    """Copy one published backup directory to ``dest_root`` (same relative layout) and verify it."""
    start = time.monotonic()
    rel = local_dir.relative_to(storage_root)
    parent = str(PurePosixPath(dest_root) / PurePosixPath(rel.parent.as_posix()))
    final = f"{parent}/{local_dir.name}"
    backup_id = local_dir.name.rsplit("-", 1)[-1]
    if dest.exists(final):
        problems = check_copy(dest, final, local_dir)
        if problems:
            raise OffsiteError(
                f"已有异地副本与清单不符 existing off-site copy differs: {'; '.join(problems[:5])}"
            )
        return OffsiteResult(dest.kind, dest.display(final), 0, 0, time.monotonic() - start, True)
    work = f"{parent}/{PARTIAL_PREFIX}{backup_id}"
    dest.makedirs(parent)
    dest.rmtree(work)
    dest.makedirs(work)
    total, count = 0, 0
    try:
        for src in _files(local_dir):
            rel_file = src.relative_to(local_dir).as_posix()
            if "/" in rel_file:
                dest.makedirs(f"{work}/{PurePosixPath(rel_file).parent}")
            total += _copy(src, dest, f"{work}/{rel_file}")
            count += 1
        problems = check_copy(dest, work, local_dir)
        if problems:
            raise OffsiteError(
                f"异地副本校验失败 off-site copy verification failed: {'; '.join(problems[:5])}"
            )
        dest.rename(work, final)
    except BaseException:
        dest.rmtree(work)
        raise
    seconds = time.monotonic() - start
    log.info(
        "异地副本 off-site copy %s: %d files, %.1f MiB in %.1fs (%.1f MiB/s), checksums verified",
        dest.display(final),
        count,
        total / 2**20,
        seconds,
        total / 2**20 / max(seconds, 1e-6),
    )
    return OffsiteResult(dest.kind, dest.display(final), count, total, round(seconds, 3))


def delete_copy(
    dest: Destination, dest_root: str, local_dir: Path, storage_root: Path
) -> str | None:
    """Remove the off-site copy of a backup (retention); returns what was removed, if anything."""
    rel = local_dir.relative_to(storage_root).as_posix()
    path = f"{PurePosixPath(dest_root) / rel}"
    if not dest.exists(path):
        return None
    dest.rmtree(path)
    return dest.display(path)
