"""数据库备份 One database backup: pg_dump (directory format) from an exported snapshot, with proof.

Steps (``backup_database``):
 1. register the backup in the catalog (state running); remove leftovers of crashed runs;
 2. connect, pick the pg_dump matching the server's major version (clear error if the client is
    older);
 3. preflight: backup directory writable and free space ≥ estimate from pg_database_size;
 4. open a REPEATABLE READ transaction, export its snapshot, read the schema fingerprint;
 5. ``pg_dump --format=directory --jobs=N --compress=Z --snapshot=<id> --no-sync``; while it runs,
    the same transaction reads the schema and counts rows (exact up to ``exact_count_max_rows``,
    else estimated and flagged), the cluster globals are saved (``pg_dumpall --globals-only``,
    passwords only when encrypted: ``cluster_globals``) and each dump file is hashed as soon as
    pg_dump closes it (``ClosedFileHasher``: inotify; a digest counts only if nothing wrote the
    file afterwards); pg_dump's own sync is left to ``storage.fsync_tree`` before publishing;
 6. optionally encrypt every file (``.enc``); SHA-256 every file not hashed yet (parallel threads);
 7. write manifest.json last, rename ``.partial-<id>`` into place atomically;
 8. catalog: running → completed (manifest, its SHA-256, size, path) + audit event.
Any failure: catalog → failed with the reason, work directory removed, the exception re-raised.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hisops.backup import cluster_globals, crypto, storage
from hisops.backup.manifest import (
    DUMP_DIR,
    ENC_SUFFIX,
    GLOBALS_DIR,
    GLOBALS_FILE,
    MANIFEST_NAME,
    Encryption,
    FileEntry,
    Globals,
    Manifest,
    Options,
    Source,
    Timings,
    Tool,
    hash_files,
    manifest_sha256,
    sha256_file,
)
from hisops.backup.snapshot import (
    ServerInfo,
    count_rows,
    exported_snapshot,
    schema_info,
    server_info,
    user_tables,
)
from hisops.targets.postgres import (
    PG_ROOT,
    PgToolError,
    connect,
    installed_tools,
    libpq_env,
    on_path,
    stop_process,
    tool_version,
)
from hisops.timeouts import STALE_BACKUP, hours

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

    from hisops.backup.snapshot import SchemaInfo, UserTable
    from hisops.catalog.repository import CatalogRepository

log = logging.getLogger(__name__)
LIBPQ_APP = "hisops-backup"  # pg_dump / pg_dumpall sessions
SNAPSHOT_APP = "hisops-backup-snapshot"  # the session holding the exported snapshot
PROGRESS_SECONDS = 15.0
STDERR_TAIL = 2000
STALE_HOURS = hours(STALE_BACKUP)  # > the backup tasks' execution_timeout (hisops.timeouts)


class BackupError(RuntimeError):
    """A backup failed; the message says why in Chinese and English."""


class BackupSuperseded(BackupError):
    """The scheduler no longer runs this try (its worker died): never publish or register it."""


class DumpToolError(BackupError):
    """No suitable pg_dump (missing, or older than the server)."""


@dataclass(frozen=True)
class PgDump:
    path: Path
    version: str
    major: int


@dataclass(frozen=True)
class DumpSpec:
    """Everything one database backup needs (resolved by the Airflow glue, or by a test)."""

    database_id: str
    system_id: str | None
    dsn: str
    storage: Path
    jobs: int = 2
    compress: int = 5
    exact_count_max_rows: int = 5_000_000
    pg_bindir: str | None = None
    encryption_secret: str | None = field(default=None, repr=False)
    encryption_conn_id: str | None = None
    dag_run_id: str | None = None
    actor: str = "db_backup"
    dag_id: str | None = None
    reserve_bytes: int = storage.DEFAULT_RESERVE_BYTES
    progress_seconds: float = PROGRESS_SECONDS
    #: "is this try still the one the scheduler runs?" — asked right before publishing; a try whose
    #: worker died goes on as an orphan process while Airflow retries it elsewhere
    lease: Callable[[], bool] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class BackupOutcome:
    backup_id: int
    target_id: str
    kind: str
    path: str
    size_bytes: int
    manifest_sha256: str
    seconds: float
    tables: int = 0
    rows: int = 0
    encrypted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --- choosing pg_dump -------------------------------------------------------------------------


def pg_dump_version(path: Path) -> tuple[str, int]:
    try:
        return tool_version(path)
    except PgToolError as exc:
        raise DumpToolError(str(exc)) from exc


def _candidates(server_major: int, pg_bindir: str | None) -> list[Path]:
    if pg_bindir:
        return [Path(pg_bindir) / "pg_dump"]
    installed = installed_tools("pg_dump")
    exact = [p for major, p in installed if major == server_major]
    newer = [p for major, p in installed if major > server_major]
    return exact + newer + [p for p in [on_path("pg_dump")] if p]


def find_pg_dump(server_major: int, server_version: str, pg_bindir: str | None = None) -> PgDump:
    """pg_dump of the server's major version (per-target ``pg_bindir`` first), never older."""
    candidates = [p for p in _candidates(server_major, pg_bindir) if p.exists()]
    if not candidates:
        where = f"pg_bindir {pg_bindir}" if pg_bindir else f"{PG_ROOT}/{server_major}/bin or PATH"
        raise DumpToolError(
            f"找不到 pg_dump not found in {where}: install the PostgreSQL {server_major} "
            "client tools (postgresql-client) or set pg_bindir in the inventory"
        )
    path = candidates[0]
    version, major = pg_dump_version(path)
    if major < server_major:
        raise DumpToolError(
            f"pg_dump 版本低于服务器 pg_dump {major} ({path}) is older than the server "
            f"({server_version}); "
            f"it cannot dump it. Install PostgreSQL {server_major} client tools and set "
            f"pg_bindir: /usr/lib/postgresql/{server_major}/bin for this database in the inventory"
        )
    return PgDump(path, version, major)


# --- running pg_dump --------------------------------------------------------------------------


def pg_dump_argv(
    tool: PgDump, conninfo: str, out_dir: Path, jobs: int, compress: int, snapshot_id: str | None
) -> list[str]:
    argv = [
        str(tool.path),
        "--format=directory",
        f"--jobs={jobs}",
        f"--compress={compress}",
        f"--file={out_dir}",
        "--no-password",
        # hisops syncs the whole work directory itself before publishing (storage.fsync_tree);
        # pg_dump's own sync reopens every file for writing, which would spoil ClosedFileHasher
        "--no-sync",
        f"--dbname={conninfo}",
    ]
    return argv + ([f"--snapshot={snapshot_id}"] if snapshot_id else [])


class Progress:
    """Logs bytes written and throughput every few seconds while a long step runs."""

    def __init__(
        self, label: str, measure: Callable[[], int], every: float, logger: logging.Logger = log
    ):
        self.label, self.measure, self.every, self.log = label, measure, every, logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{label}", daemon=True)
        self.start = time.monotonic()

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        last_bytes, last_t = 0, self.start
        while not self._stop.wait(self.every):
            try:
                done = self.measure()
            except OSError:
                continue
            now = time.monotonic()
            rate = (done - last_bytes) / max(now - last_t, 1e-6)
            self.log.info(
                "%s: 已写 %s written, %s/s (%.0fs)",
                self.label,
                human(done),
                human(rate),
                now - self.start,
            )
            last_bytes, last_t = done, now


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def start_pg_dump(argv: list[str], env: dict[str, str], stderr_file: IO[bytes]) -> subprocess.Popen:
    log.info(
        "运行 running: %s",
        " ".join(a if not a.startswith("--dbname=") else "--dbname=…" for a in argv),
    )
    return subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr_file
    )


def wait_pg_dump(proc: subprocess.Popen, stderr_file: IO[bytes], database_id: str) -> None:
    rc = proc.wait()
    if rc != 0:
        stderr_file.seek(0)
        tail = stderr_file.read()[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        raise BackupError(
            f"pg_dump 失败 failed for {database_id} (exit {rc}): {tail or 'no message'}"
        )


# --- checksums while pg_dump writes ----------------------------------------------------------

IN_CLOSE_WRITE, IN_Q_OVERFLOW = 0x00000008, 0x00004000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class ClosedFileHasher:
    """SHA-256 of each file in ``folder`` as soon as its writer closes it (Linux inotify
    ``IN_CLOSE_WRITE``), in a thread beside pg_dump, so the checksum pass overlaps the dump.

    Proves no less than hashing afterwards: a digest is used (``digests``) only if, after pg_dump
    has exited and every queued event was read, the file was closed after writing exactly as many
    times as when it was hashed (no writer came back: any open for writing ends in another
    ``IN_CLOSE_WRITE``) and its inode, size, mtime and ctime are the ones seen before and after
    hashing. Every other file — all of them when inotify is unavailable or its queue overflowed —
    is hashed after the dump, as before."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.closes: dict[str, int] = {}
        self.done: dict[str, tuple[int, tuple[int, int, int, int], int, str]] = {}
        self.usable = False
        self._pending: list[str] = []
        self._stop = threading.Event()
        self._fd = -1
        self._thread = threading.Thread(target=self._run, name="sha256-closed", daemon=True)

    def __enter__(self) -> ClosedFileHasher:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                return self
            if libc.inotify_add_watch(fd, os.fsencode(self.folder), IN_CLOSE_WRITE) < 0:
                os.close(fd)
                return self
        except (OSError, AttributeError):  # no libc / no inotify: everything is hashed afterwards
            return self
        self._fd, self.usable = fd, True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> None:
        """Stop after reading every queued event (call once the writers have exited)."""
        if self._fd < 0:
            return
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
        self._fd = -1

    def _read_events(self) -> bool:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return False
        offset = 0
        while offset + EVENT.size <= len(data):
            _wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
            raw = data[offset + EVENT.size : offset + EVENT.size + length]
            offset += EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self.usable = False  # events were lost: trust none of the early digests
            name = os.fsdecode(raw.rstrip(b"\0"))
            if name and mask & IN_CLOSE_WRITE:
                self.closes[name] = self.closes.get(name, 0) + 1
                self._pending.append(name)
        return True

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            select.select([self._fd], [], [], 0.2)
            while self._read_events():
                pass
            if stopping:
                return  # the writers are gone and the queue is drained; the rest: afterwards
            while self._pending and not self._stop.is_set():
                self._hash(self._pending.pop(0))

    def _hash(self, name: str) -> None:
        path = self.folder / name
        try:
            before, generation = _stat_key(path), self.closes[name]
            size, digest = sha256_file(path)
            after = _stat_key(path)
        except OSError:
            return
        if before == after and size == after[1]:
            self.done[name] = (generation, after, size, digest)

    def digests(self) -> dict[Path, tuple[int, str]]:
        """The digests still valid now (see the class doc); call after ``finish``."""
        if not self.usable:
            return {}
        out: dict[Path, tuple[int, str]] = {}
        for name, (generation, key, size, digest) in self.done.items():
            path = self.folder / name
            with contextlib.suppress(OSError):
                if self.closes.get(name) == generation and _stat_key(path) == key:
                    out[path] = (size, digest)
        return out


@contextlib.contextmanager
def hashing_closed_files(folder: Path, enabled: bool) -> Iterator[ClosedFileHasher | None]:
    if not enabled:
        yield None
        return
    folder.mkdir(mode=0o700)  # pg_dump -Fd accepts an existing empty directory
    with ClosedFileHasher(folder) as hasher:
        yield hasher


# --- checksums and encryption -----------------------------------------------------------------


def checksum_entries(
    root: Path,
    files: list[Path],
    workers: int,
    prehashed: dict[Path, tuple[int, str]] | None = None,
) -> list[FileEntry]:
    known = prehashed or {}
    rest = [p for p in files if p not in known]
    digests = {**known, **(hash_files(rest, workers) if rest else {})}
    return [
        FileEntry(path=p.relative_to(root).as_posix(), size=digests[p][0], sha256=digests[p][1])
        for p in files
    ]


def encrypt_in_place(
    root: Path, files: list[Path], secret: str, kdf_salt: bytes, workers: int
) -> list[FileEntry]:
    """Replace each file by ``<file>.enc``; hash while writing (one pass)."""

    def one(path: Path) -> FileEntry:
        target = path.with_name(path.name + ENC_SUFFIX)
        plain, size, digest = crypto.encrypt_file(path, target, secret, kdf_salt)
        path.unlink()
        return FileEntry(
            path=target.relative_to(root).as_posix(), size=size, sha256=digest, plain_size=plain
        )

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="encrypt") as pool:
        return list(pool.map(one, files))


def encryption_info(spec: DumpSpec, kdf_salt: bytes) -> Encryption:
    secret = spec.encryption_secret or ""
    return Encryption(
        algorithm=crypto.ALGORITHM,
        key_conn_id=spec.encryption_conn_id or "",
        key_id=crypto.key_id(secret, kdf_salt),
        kdf=crypto.kdf_name(secret),
        kdf_salt=kdf_salt.hex(),
        chunk_size=crypto.DEFAULT_CHUNK,
    )


def seal_files(
    spec: DumpSpec, work: Path, prehashed: dict[Path, tuple[int, str]] | None = None
) -> tuple[list[FileEntry], Encryption | None, float]:
    """Encrypt (optional) and checksum everything under ``work/dump`` and ``work/globals``
    (``prehashed``: digests taken while pg_dump ran); returns (entries, encryption, seconds)."""
    start = time.monotonic()
    files = sorted(p for d in (DUMP_DIR, GLOBALS_DIR) for p in (work / d).rglob("*") if p.is_file())
    workers = max(2, spec.jobs)
    if spec.encryption_secret:
        salt = os.urandom(16)
        entries = encrypt_in_place(work, files, spec.encryption_secret, salt, workers)
        return (
            sorted(entries, key=lambda e: e.path),
            encryption_info(spec, salt),
            time.monotonic() - start,
        )
    entries = checksum_entries(work, files, workers, prehashed)
    return entries, None, time.monotonic() - start


# --- the whole backup -------------------------------------------------------------------------


def connect_source(dsn: str, database_id: str) -> PgConnection:
    import psycopg2

    try:
        return connect(dsn, application_name=SNAPSHOT_APP, autocommit=True)
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackupError(f"无法连接源数据库 cannot connect to {database_id}: {first}") from exc


def dump_in_snapshot(
    spec: DumpSpec, conn: PgConnection, tool: PgDump, work: Path
) -> dict[str, Any]:
    """Export a snapshot, pg_dump with --snapshot and, while it runs, read schema + counts in the
    same snapshot, save the globals and hash closed dump files; returns the facts."""
    from concurrent.futures import Future

    conninfo, env = libpq_env(spec.dsn, application_name=LIBPQ_APP)
    out = work / DUMP_DIR
    proc = None
    with (
        exported_snapshot(conn) as snap,
        tempfile.TemporaryFile() as err,
        ThreadPoolExecutor(1, thread_name_prefix="globals") as side,
        hashing_closed_files(out, not spec.encryption_secret) as hasher,
    ):
        start = time.monotonic()
        globals_saved: Future | None = None
        try:
            proc = start_pg_dump(
                pg_dump_argv(tool, conninfo, out, spec.jobs, spec.compress, snap.snapshot_id),
                env,
                err,
            )
            globals_saved = side.submit(save_globals, spec, tool, work)
            with Progress(
                f"pg_dump {spec.database_id}",
                lambda: storage.tree_size(out) if out.exists() else 0,
                spec.progress_seconds,
            ):
                tables, schema, counts = _read_while_dumping(conn, spec, proc, err)
                wait_pg_dump(proc, err, spec.database_id)
        finally:
            stop_process(proc)
            if hasher is not None:
                hasher.finish()
        seconds = time.monotonic() - start
        saved = globals_saved.result()
    prehashed = hasher.digests() if hasher is not None else {}
    log.info(
        "pg_dump %s: %.1fs; %d files hashed while it wrote them",
        spec.database_id,
        seconds,
        len(prehashed),
    )
    return {
        "snapshot": snap,
        "tables": counts,
        "schema": schema,
        "dump_seconds": seconds,
        "globals": saved,
        "prehashed": prehashed,
    }


def _read_while_dumping(
    conn: PgConnection, spec: DumpSpec, proc: subprocess.Popen, err: IO[bytes]
) -> tuple[list[UserTable], SchemaInfo, list]:
    """Tables, schema fingerprint and row counts in the snapshot transaction while pg_dump runs."""
    import psycopg2

    try:
        tables = user_tables(conn)
        schema = schema_info(conn, tables)
    except psycopg2.Error as exc:
        raise _snapshot_failed(
            proc, err, spec, "快照内读取结构失败 schema read in snapshot", exc
        ) from exc
    return tables, schema, _count_while_dumping(conn, tables, spec, proc, err)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _prefer_pg_dump_error(proc: subprocess.Popen, err: IO[bytes], spec: DumpSpec) -> None:
    """When the source is gone, pg_dump's own error is the better message: raise it if any."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    if proc.returncode not in (None, 0):
        wait_pg_dump(proc, err, spec.database_id)


def _snapshot_failed(
    proc: subprocess.Popen, err: IO[bytes], spec: DumpSpec, what: str, exc: BaseException
) -> BackupError:
    """A read in the snapshot transaction failed: pg_dump's own error is raised when it has one
    (the source is gone), else the error to raise names ``what``."""
    _prefer_pg_dump_error(proc, err, spec)
    return BackupError(f"{what} failed for {spec.database_id}: {_first_line(exc)}")


def _count_while_dumping(
    conn: PgConnection, tables: list, spec: DumpSpec, proc: subprocess.Popen, err: IO[bytes]
) -> list:
    """Count rows in the snapshot transaction while pg_dump runs (the transaction is idle
    otherwise).

    When counting fails (source gone), pg_dump's own error is the better message: prefer it."""
    import psycopg2

    try:
        return count_rows(conn, tables, spec.exact_count_max_rows)
    except psycopg2.Error as exc:
        raise _snapshot_failed(
            proc, err, spec, "快照内计数失败 row count in snapshot", exc
        ) from exc


def build_manifest(
    spec: DumpSpec,
    backup_id: int,
    created_at: datetime,
    info: ServerInfo,
    tool: PgDump,
    facts: dict[str, Any],
    entries: list[FileEntry],
    encryption: Encryption | None,
    checksum_seconds: float,
    started: float,
) -> Manifest:
    return Manifest(
        backup_id=backup_id,
        kind="database",
        database_id=spec.database_id,
        system_id=spec.system_id,
        created_at=created_at,
        finished_at=datetime.now(UTC),
        source=Source(
            host=info.host,
            port=info.port,
            dbname=info.dbname,
            server_version=info.server_version,
            server_version_num=info.server_version_num,
        ),
        tool=Tool(pg_dump_path=str(tool.path), pg_dump_version=tool.version),
        options=Options(format="directory", jobs=spec.jobs, compress=spec.compress),
        snapshot=facts["snapshot"],
        tables=facts["tables"],
        schema=facts["schema"],
        files=entries,
        encryption=encryption,
        globals=_globals_entry(facts.get("globals"), encryption is not None),
        timings=Timings(
            dump_seconds=round(facts["dump_seconds"], 3),
            checksum_seconds=round(checksum_seconds, 3),
            total_seconds=round(time.monotonic() - started, 3),
        ),
        size_bytes=sum(e.size for e in entries),
    )


def _globals_entry(saved: cluster_globals.SavedGlobals | None, encrypted: bool) -> Globals | None:
    if saved is None:
        return None
    path = f"{GLOBALS_DIR}/{GLOBALS_FILE}" + (ENC_SUFFIX if encrypted else "")
    return Globals(
        path=path, role_passwords=saved.role_passwords, roles=list(saved.roles), note=saved.note
    )


def save_globals(spec: DumpSpec, tool: PgDump, work: Path) -> cluster_globals.SavedGlobals:
    conninfo, env = libpq_env(spec.dsn, application_name=LIBPQ_APP)
    try:
        return cluster_globals.save(tool.path, conninfo, env, work, bool(spec.encryption_secret))
    except cluster_globals.GlobalsError as exc:
        raise BackupError(str(exc)) from exc


def write_manifest(work: Path, manifest: Manifest) -> None:
    storage.write_private(work / MANIFEST_NAME, manifest.to_json().encode())


def clean_leftovers(repo: CatalogRepository, root: Path, target_id: str) -> list[int]:
    """Remove ``.partial-*`` of crashed runs; their catalog rows (still running) become failed.

    Rows still ``running`` after ``STALE_HOURS`` without a live work directory (the run died before
    it created one, or its worker vanished) are failed too, so they never look like a backup in
    progress."""
    failed = []
    for item in storage.remove_leftovers(root):
        log.warning("清理中断备份残留 removed leftover of an interrupted backup: %s", item.path)
        record = repo.get_backup(item.backup_id) if item.backup_id is not None else None
        if record is not None and record.state == "running":
            repo.fail_backup(
                record.id, f"中断 interrupted: leftover {item.path.name} removed by a later run"
            )
            failed.append(record.id)
    cutoff = datetime.now(UTC) - timedelta(hours=STALE_HOURS)
    for record in repo.backups_for(target_id, states=["running"]):
        if record.started_at < cutoff and not storage.partial_dir(root, record.id).exists():
            repo.fail_backup(
                record.id,
                f"中断 interrupted: still running after {STALE_HOURS} h, no work directory",
            )
            failed.append(record.id)
    return failed


def fail_backup(
    repo: CatalogRepository,
    backup_id: int,
    actor: str,
    target: str,
    exc: BaseException,
    run_id: str | None,
    dag_id: str | None = None,
) -> None:
    """Catalog: running → failed with the reason, plus a failure audit event (never masks exc)."""
    reason = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        repo.fail_backup(backup_id, reason)
        repo.add_audit_event(
            actor=actor,
            action="backup",
            target=target,
            result="failure",
            details={"backup_id": backup_id, "error": reason[:500]},
            dag_id=dag_id,
            run_id=run_id,
        )
    except Exception:  # noqa: BLE001 - the catalog itself may be what failed; the original error wins
        log.exception(
            "备份失败且无法写入运维目录 could not record the failure of backup %s", backup_id
        )


def check_lease(lease: Callable[[], bool] | None, backup_id: int) -> None:
    """Refuse to publish when the scheduler gave this try up (it failed it, retries elsewhere)."""
    if lease is not None and not lease():
        raise BackupSuperseded(
            f"备份 #{backup_id} 已被取代，不登记 superseded: Airflow no longer runs this try "
            "(its worker died and the task was failed or retried); not published"
        )


def register_completed(
    repo: CatalogRepository, backup_id: int, manifest: Manifest, final: Path
) -> str:
    """Catalog: running → completed with the published manifest; returns the manifest's SHA-256."""
    digest = manifest_sha256(final)
    repo.complete_backup(
        backup_id,
        manifest.model_dump(mode="json", by_alias=True),
        digest,
        manifest.size_bytes,
        str(final),
    )
    return digest


def backup_database(spec: DumpSpec, repo: CatalogRepository) -> BackupOutcome:
    """Run one database backup end to end (see module doc).

    Raises BackupError/StorageError on failure."""
    started = time.monotonic()
    root = storage.target_root(spec.storage, spec.database_id)
    backup_id = repo.register_backup_start(
        spec.database_id, spec.system_id, "database", None, spec.dag_run_id
    )
    final: Path | None = None
    try:
        storage.ensure_writable(root)
        clean_leftovers(repo, root, spec.database_id)
        conn = connect_source(spec.dsn, spec.database_id)
        try:
            info = server_info(conn)
            tool = find_pg_dump(info.major, info.server_version, spec.pg_bindir)
            free = storage.check_space(
                root,
                storage.estimate_bytes(
                    info.database_size, spec.compress, bool(spec.encryption_secret)
                ),
                spec.reserve_bytes,
            )
            log.info(
                "备份 backup #%s %s: server %s, database %s, free %s, %s, jobs %s, compress %s",
                backup_id,
                spec.database_id,
                info.server_version,
                human(info.database_size),
                human(free),
                tool.path,
                spec.jobs,
                spec.compress,
            )
            created_at = datetime.now(UTC)
            with storage.work_dir(root, backup_id) as work:
                facts = dump_in_snapshot(spec, conn, tool, work)
                entries, encryption, checksum_s = seal_files(spec, work, facts["prehashed"])
                storage.tighten(work)
                manifest = build_manifest(
                    spec,
                    backup_id,
                    created_at,
                    info,
                    tool,
                    facts,
                    entries,
                    encryption,
                    checksum_s,
                    started,
                )
                write_manifest(work, manifest)
                storage.fsync_tree(work)
                check_lease(spec.lease, backup_id)
                final = storage.publish(work, storage.final_dir(root, created_at, backup_id))
        finally:
            conn.close()
        digest = register_completed(repo, backup_id, manifest, final)
    except BaseException as exc:
        if final is not None:
            storage.unpublish(final, root, backup_id)
        fail_backup(
            repo, backup_id, spec.actor, spec.database_id, exc, spec.dag_run_id, spec.dag_id
        )
        raise
    outcome = BackupOutcome(
        backup_id,
        spec.database_id,
        "database",
        str(final),
        manifest.size_bytes,
        digest,
        round(time.monotonic() - started, 3),
        len(manifest.tables),
        sum(t.rows for t in manifest.tables),
        encryption is not None,
    )
    _record_success(repo, spec, outcome, manifest)
    return outcome


def _record_success(
    repo: CatalogRepository, spec: DumpSpec, outcome: BackupOutcome, manifest: Manifest
) -> None:
    rate = outcome.size_bytes / max(manifest.timings.dump_seconds, 1e-6)
    log.info(
        "备份完成 backup #%s %s: %s in %.1fs (pg_dump %.1fs, %s/s; checksums %.1fs), "
        "%d tables, %s rows → %s",
        outcome.backup_id,
        spec.database_id,
        human(outcome.size_bytes),
        outcome.seconds,
        manifest.timings.dump_seconds,
        human(rate),
        manifest.timings.checksum_seconds,
        outcome.tables,
        f"{outcome.rows:,}",
        outcome.path,
    )
    repo.add_audit_event(
        actor=spec.actor,
        action="backup",
        target=spec.database_id,
        result="success",
        details={
            "backup_id": outcome.backup_id,
            "path": outcome.path,
            "size_bytes": outcome.size_bytes,
            "seconds": outcome.seconds,
            "encrypted": outcome.encrypted,
        },
        dag_id=spec.dag_id,
        run_id=spec.dag_run_id,
    )
