"""系统文件备份 File backup: a host's ``backup_paths`` as tar archives,
streamed (never held in memory).

For each configured path the host runs ``tar`` with its own compressor (zstd when the host has it,
else gzip) and writes the archive to stdout; we read the stream in 1 MiB pieces — over the SSH
channel or a local pipe — and write it to ``files/NN-<name>.tar.zst|.tar.gz`` while hashing it.
The same rules as database backups hold: catalog row, work directory, manifest written last,
atomic rename, 0600/0700, a failed run is recorded and leaves nothing behind.

``verify_archive`` re-reads an archive end to end (checksum, decompress, list members): a file
backup whose archives all list is marked *verified* (file backups have no restore drill).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from hisops.backup import storage
from hisops.backup.dump import (
    BackupError,
    BackupOutcome,
    Progress,
    fail_backup,
    human,
    register_completed,
)
from hisops.backup.manifest import (
    CHUNK,
    FILES_DIR,
    MANIFEST_NAME,
    MISSING_FILE,
    FileEntry,
    Manifest,
    Options,
    Source,
    Timings,
    Tool,
    sha256_file,
)

log = logging.getLogger(__name__)
GNU_TAR_WARNING = 1  # "file changed as we read it": archive is usable, recorded as a warning
COMPRESSORS = {
    "zstd": ("zstd -q -3 -T0", ".tar.zst", "zstd -dc"),
    "gzip": ("gzip -6", ".tar.gz", "gzip -dc"),
}


@dataclass(frozen=True)
class FileSpec:
    host_id: str
    system_id: str | None
    paths: list[str]
    storage: Path
    dag_run_id: str | None = None
    dag_id: str | None = None
    actor: str = "file_backup"
    progress_seconds: float = 15.0
    reserve_bytes: int = storage.DEFAULT_RESERVE_BYTES


@dataclass
class StreamResult:
    rc: int
    stderr: str


# --- streams from a host ----------------------------------------------------------------------


@contextmanager
def local_stream(command: str) -> Iterator[tuple[BinaryIO, Any]]:
    """stdout of ``sh -c command`` as a binary stream; the second value
    returns (rc, stderr) at the end."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
        try:

            def finish() -> StreamResult:
                rc = proc.wait()
                err.seek(0)
                return StreamResult(rc, err.read()[-4000:].decode("utf-8", "replace"))

            yield proc.stdout, finish
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


@contextmanager
def ssh_stream(runner: Any, command: str) -> Iterator[tuple[BinaryIO, Any]]:
    """stdout of ``command`` on the runner's host over its SSH connection (paramiko channel)."""
    client = ssh_client(runner)
    channel = client.get_transport().open_session()
    try:
        channel.exec_command(command)
        out = channel.makefile("rb", CHUNK)

        def finish() -> StreamResult:
            rc = channel.recv_exit_status()
            err = b""
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            return StreamResult(rc, err[-4000:].decode("utf-8", "replace"))

        yield out, finish
    finally:
        channel.close()


def ssh_client(runner: Any) -> Any:
    """The runner's paramiko client (connected on first use, like ``SshRunner.run``)."""
    if getattr(runner, "_client", None) is None:
        runner.run("true", timeout=30)  # connects (raises TargetUnreachable when it cannot)
    return runner._client


def open_stream(runner: Any, command: str):
    return ssh_stream(runner, command) if hasattr(runner, "params") else local_stream(command)


# --- commands ---------------------------------------------------------------------------------


def choose_compressor(runner: Any) -> str:
    result = runner.run("command -v zstd >/dev/null 2>&1 && echo zstd || echo gzip", timeout=30)
    return "zstd" if result.ok and result.stdout.strip() == "zstd" else "gzip"


def tar_command(path: str, compressor: str) -> str:
    """GNU tar of one directory (or file), compressed by the host; paths relative to its parent."""
    p = PurePosixPath(path)
    parent, name = (str(p.parent), p.name) if p.name else ("/", ".")
    program = COMPRESSORS[compressor][0]
    return (
        f"tar --create --file=- --directory={shlex.quote(parent)} "
        f"--use-compress-program={shlex.quote(program)} --warning=no-file-changed -- "
        f"{shlex.quote(name)}"
    )


def archive_name(index: int, path: str, compressor: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", path.strip("/")) or "root"
    return f"{index:02d}-{slug[:80]}{COMPRESSORS[compressor][1]}"


def check_paths(runner: Any, paths: list[str]) -> None:
    """Every path exists and is readable on the host (before streaming anything)."""
    missing = []
    for p in paths:
        if not runner.run(f"test -r {shlex.quote(p)}", timeout=30).ok:
            missing.append(p)
    if missing:
        raise BackupError(
            f"备份路径不存在或不可读 backup paths missing or unreadable on {runner.target}: "
            f"{', '.join(missing)}"
        )


# --- streaming one archive --------------------------------------------------------------------


def stream_to_file(src: BinaryIO, dest: Path, label: str, every: float) -> tuple[int, str]:
    """Copy ``src`` to a new 0600 file in 1 MiB pieces, hashing as we go; returns (size, sha256)."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, storage.FILE_MODE)
    with os.fdopen(fd, "wb") as out, Progress(label, lambda: size, every):
        while piece := src.read(CHUNK):
            out.write(piece)
            digest.update(piece)
            size += len(piece)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def archive_one(
    runner: Any, path: str, dest: Path, compressor: str, every: float
) -> tuple[FileEntry, str]:
    with open_stream(runner, tar_command(path, compressor)) as (stream, finish):
        size, digest = stream_to_file(stream, dest, f"tar {runner.target}:{path}", every)
        result = finish()
    if result.rc not in (0, GNU_TAR_WARNING):
        raise BackupError(
            f"tar 失败 failed on {runner.target} for {path} (exit {result.rc}): "
            f"{result.stderr.strip()[-500:] or 'no message'}"
        )
    warning = result.stderr.strip() if result.rc == GNU_TAR_WARNING else ""
    return FileEntry(path=f"{FILES_DIR}/{dest.name}", size=size, sha256=digest), warning


# --- the whole file backup --------------------------------------------------------------------


def backup_files(spec: FileSpec, runner: Any, repo: Any) -> BackupOutcome:
    """Archive every path of one host into one backup (catalog kind ``files``)."""
    from hisops.backup.dump import clean_leftovers

    started = time.monotonic()
    root = storage.target_root(spec.storage, spec.host_id, "files")
    backup_id = repo.register_backup_start(
        spec.host_id, spec.system_id, "files", None, spec.dag_run_id
    )
    final: Path | None = None
    try:
        storage.preflight(root, 0, spec.reserve_bytes)
        clean_leftovers(repo, root, spec.host_id)
        check_paths(runner, spec.paths)
        compressor = choose_compressor(runner)
        created_at = datetime.now(UTC)
        with storage.work_dir(root, backup_id) as work:
            (work / FILES_DIR).mkdir(mode=storage.DIR_MODE)
            entries, warnings = [], []
            for i, path in enumerate(spec.paths, 1):
                entry, warning = archive_one(
                    runner,
                    path,
                    work / FILES_DIR / archive_name(i, path, compressor),
                    compressor,
                    spec.progress_seconds,
                )
                entries.append(entry)
                warnings += [f"{path}: {warning}"] if warning else []
            manifest = _manifest(spec, backup_id, created_at, runner, compressor, entries, started)
            storage.write_private(work / MANIFEST_NAME, manifest.to_json().encode())
            storage.fsync_tree(work)
            final = storage.publish(work, storage.final_dir(root, created_at, backup_id))
        digest = register_completed(repo, backup_id, manifest, final)
    except BaseException as exc:
        if final is not None:
            storage.unpublish(final, root, backup_id)
        fail_backup(repo, backup_id, spec.actor, spec.host_id, exc, spec.dag_run_id, spec.dag_id)
        raise
    outcome = BackupOutcome(
        backup_id,
        spec.host_id,
        "files",
        str(final),
        manifest.size_bytes,
        digest,
        round(time.monotonic() - started, 3),
    )
    log.info(
        "文件备份完成 file backup #%s %s: %d archives, %s in %.1fs → %s%s",
        backup_id,
        spec.host_id,
        len(entries),
        human(manifest.size_bytes),
        outcome.seconds,
        final,
        f" (warnings: {'; '.join(warnings)})" if warnings else "",
    )
    repo.add_audit_event(
        actor=spec.actor,
        action="backup_files",
        target=spec.host_id,
        result="success",
        details={
            "backup_id": backup_id,
            "path": str(final),
            "size_bytes": manifest.size_bytes,
            "paths": spec.paths,
            "warnings": warnings[:20],
        },
        dag_id=spec.dag_id,
        run_id=spec.dag_run_id,
    )
    return outcome


def _manifest(
    spec: FileSpec,
    backup_id: int,
    created_at: datetime,
    runner: Any,
    compressor: str,
    entries: list[FileEntry],
    started: float,
) -> Manifest:
    elapsed = round(time.monotonic() - started, 3)
    return Manifest(
        backup_id=backup_id,
        kind="files",
        host_id=spec.host_id,
        system_id=spec.system_id,
        created_at=created_at,
        finished_at=datetime.now(UTC),
        source=Source(host=runner.target, paths=list(spec.paths)),
        tool=Tool(tar_command=tar_command("<path>", compressor)),
        options=Options(format="tar", compression=compressor),
        files=entries,
        timings=Timings(dump_seconds=elapsed, total_seconds=elapsed),
        size_bytes=sum(e.size for e in entries),
    )


# --- verification -----------------------------------------------------------------------------


def verify_archive(backup_dir: Path, entry: FileEntry) -> tuple[list[str], int]:
    """Checksum, then decompress and list the archive with the local tar; (problems, members)."""
    path = backup_dir / entry.path
    size, digest = sha256_file(path)
    if (size, digest) != (entry.size, entry.sha256):
        return [f"校验和不符 checksum mismatch: {entry.path}"], 0
    decompress = next(c[2] for c in COMPRESSORS.values() if entry.path.endswith(c[1]))
    cmd = f"{decompress} {shlex.quote(str(path))} | tar --list --file=-"
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["/bin/bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.PIPE, stderr=err
        )
        members = sum(piece.count(b"\n") for piece in iter(lambda: proc.stdout.read(CHUNK), b""))
        proc.stdout.close()
        if proc.wait() != 0:
            err.seek(0)
            why = err.read()[-300:].decode("utf-8", "replace").strip()
            return [f"归档无法读取 archive unreadable: {entry.path}: {why}"], 0
    return [], members


def verify_file_backup(backup_dir: str | Path) -> tuple[list[str], int]:
    """All archives of a file backup: present, checksums equal, decompress
    and list; (problems, members)."""
    from hisops.backup.manifest import load_manifest

    root = Path(backup_dir)
    manifest = load_manifest(root)
    problems, members = [], 0
    for entry in manifest.files:
        if not (root / entry.path).is_file():
            problems.append(f"{MISSING_FILE}: {entry.path}")
            continue
        found, count = verify_archive(root, entry)
        problems += found
        members += count
    return problems, members
