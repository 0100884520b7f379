"""The backup manifest (``manifest.json``, format ``hisops-backup/1``):
what a backup contains and proves.

Layout of one backup (database)::

    <storage>/<database_id>/<YYYYmmddTHHMMSSZ>-<backup id>/
        dump/            pg_dump --format=directory output (files may end in .enc when encrypted)
        manifest.json    written LAST

Layout of one file backup (hosts' ``backup_paths``)::

    <storage>/_files/<host_id>/<YYYYmmddTHHMMSSZ>-<backup id>/
        files/           one tar archive per configured path
                         (``NN-<name>.tar.gz|.tar.zst``, maybe .enc)
        manifest.json

While a backup runs, it is built in ``<parent>/.partial-<backup id>/`` and renamed into place after
the manifest is written; a directory without a complete, parseable manifest is never a backup.
``.partial-*`` leftovers of crashed runs are removed by the next run (``storage.py``).

The verification side reads this module: ``load_manifest``, ``manifest_sha256``, ``verify_files``.
Compatibility rule: fields may be added (with defaults); none is
removed or renamed within format /1.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "hisops-backup/1"
MANIFEST_NAME = "manifest.json"
DUMP_DIR = "dump"
GLOBALS_DIR = "globals"
GLOBALS_FILE = "globals.sql"  # pg_dumpall --globals-only (roles, tablespaces) in GLOBALS_DIR
FILES_DIR = "files"
PARTIAL_PREFIX = ".partial-"
FILES_PREFIX = "_files"  # not a valid slug start, so never clashes with a database id
ENC_SUFFIX = ".enc"
TS_FORMAT = "%Y%m%dT%H%M%SZ"
MISSING_FILE = "文件缺失 missing file"  # a problem line: a file the manifest lists is not there
CHUNK = 1024 * 1024
ASSET_URI_PREFIX = "hisops://backup/"


class _M(BaseModel):
    # extra="ignore": a reader of /1 accepts manifests written by a
    # newer /1 writer with added fields
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Aliased(_M):
    """A model with fields named like Python keywords or BaseModel attributes (``schema_``,
    ``globals_``): read by either name, written by the alias (``schema``, ``globals``)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Source(_M):
    """Where the data came from. Database backups:
    host/port/dbname/versions; file backups: host + paths."""

    host: str
    port: int | None = None
    dbname: str | None = None
    server_version: str | None = None
    server_version_num: int | None = None
    paths: list[str] = []


class Tool(_M):
    pg_dump_path: str | None = None
    pg_dump_version: str | None = None
    tar_command: str | None = None


class Options(_M):
    format: Literal["directory", "tar"] = "directory"
    jobs: int | None = None
    compress: int | None = None
    compression: str | None = None  # "gzip" | "zstd" | "none" for file backups


class Snapshot(_M):
    """The exported snapshot pg_dump ran in; the row counts and schema below were read in it too."""

    snapshot_id: str
    taken_at: datetime
    txid_snapshot: str | None = None
    lsn: str | None = None


class TableCount(_Aliased):
    schema_: str = Field(alias="schema")
    name: str
    rows: int
    exact: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema_}.{self.name}"


class ForeignKey(_M):
    columns: list[str]
    ref_table: str  # "schema.table"
    ref_columns: list[str]


class TableSchema(_M):
    columns: list[tuple[str, str, bool]]  # (name, type as format_type(), not_null)
    primary_key: list[str] = []
    unique: list[list[str]] = []
    foreign_keys: list[ForeignKey] = []
    indexes: list[str] = []


class SchemaInfo(_M):
    fingerprint_sha256: str
    tables: dict[str, TableSchema]  # key "schema.table"


class FileEntry(_M):
    """One file of the backup as stored (after encryption): path
    relative to the backup directory."""

    path: str
    size: int
    sha256: str
    plain_size: int | None = None  # for encrypted files: size of the decrypted content


class Encryption(_M):
    algorithm: str  # "AES-256-GCM-STREAM/1" (see crypto.py)
    key_conn_id: str
    key_id: str  # non-secret fingerprint of the key: tells which key a backup needs
    kdf: str
    kdf_salt: str | None = None  # hex; also in every .enc file's header
    chunk_size: int


class Globals(_M):
    """Cluster globals saved beside the dump (``pg_dumpall --globals-only``)."""

    path: str  # relative to the backup directory (maybe .enc)
    role_passwords: bool = False  # only when the backup is encrypted (and the source allows it)
    roles: list[str] = []  # role names defined in it
    note: str | None = None


class Timings(_M):
    dump_seconds: float = 0.0
    checksum_seconds: float = 0.0
    total_seconds: float = 0.0


class Manifest(_Aliased):
    format: Literal["hisops-backup/1"] = FORMAT
    backup_id: int
    kind: Literal["database", "files"]
    database_id: str | None = None
    host_id: str | None = None
    system_id: str | None = None
    created_at: datetime
    finished_at: datetime
    source: Source
    tool: Tool
    options: Options
    snapshot: Snapshot | None = None
    tables: list[TableCount] = []
    schema_: SchemaInfo | None = Field(default=None, alias="schema")
    files: list[FileEntry]
    encryption: Encryption | None = None
    globals_: Globals | None = Field(default=None, alias="globals")
    timings: Timings
    size_bytes: int

    @property
    def target_id(self) -> str:
        return self.database_id or self.host_id or ""

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    def table_rows(self) -> dict[str, int]:
        """{"schema.table": rows} (estimates included; see ``tables[].exact``)."""
        return {t.qualified: t.rows for t in self.tables}


class ManifestError(ValueError):
    """manifest.json missing, unreadable or not a hisops-backup/1 manifest."""


# --- naming -----------------------------------------------------------------------------------


def asset_uri(target_id: str) -> str:
    """The Airflow Asset URI updated when a backup of ``target_id`` completes."""
    return f"{ASSET_URI_PREFIX}{target_id}"


def backup_dir_name(created_at: datetime, backup_id: int) -> str:
    return f"{created_at.astimezone(UTC).strftime(TS_FORMAT)}-{backup_id}"


def parse_backup_dir_name(name: str) -> tuple[datetime, int] | None:
    """'20250101T010000Z-42' → (datetime, 42); None for anything else (partials, stray files)."""
    stamp, sep, ident = name.partition("-")
    if not sep or not ident.isdigit():
        return None
    try:
        return datetime.strptime(stamp, TS_FORMAT).replace(tzinfo=UTC), int(ident)
    except ValueError:
        return None


# --- reading ------------------------------------------------------------------------------------


def load_manifest(backup_dir: str | Path) -> Manifest:
    path = Path(backup_dir) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(
            f"清单不可读 manifest not readable: {path}: {exc.strerror or exc}"
        ) from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"清单不是合法 JSON manifest is not valid JSON: {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f"不是 {FORMAT} 清单 not a {FORMAT} manifest: {path}")
    try:
        return Manifest.model_validate(data)
    except ValueError as exc:
        raise ManifestError(f"清单内容不完整 manifest incomplete: {path}: {exc}") from exc


def manifest_sha256(backup_dir: str | Path) -> str:
    """SHA-256 of manifest.json as stored (the catalog keeps it to detect a swapped manifest)."""
    return sha256_file(Path(backup_dir) / MANIFEST_NAME)[1]


# --- hashing ------------------------------------------------------------------------------------


def sha256_file(path: str | Path, chunk: int = CHUNK) -> tuple[int, str]:
    """(size, hex sha256), streamed in ``chunk`` pieces; hashlib
    releases the GIL, so threads scale."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def hash_files(paths: Iterable[Path], workers: int | None = None) -> dict[Path, tuple[int, str]]:
    """Hash many files in parallel threads (bounded memory: one chunk per worker)."""
    paths = list(paths)
    workers = max(1, min(workers or (os.cpu_count() or 2), len(paths) or 1, 8))
    with ThreadPoolExecutor(workers, thread_name_prefix="sha256") as pool:
        return dict(zip(paths, pool.map(sha256_file, paths), strict=True))


def list_data_files(backup_dir: Path) -> list[Path]:
    """Every regular file in the backup directory except the manifest, sorted."""
    top = backup_dir / MANIFEST_NAME
    return sorted(p for p in backup_dir.rglob("*") if p.is_file() and p != top)


def verify_files(
    backup_dir: str | Path, manifest: Manifest, workers: int | None = None
) -> list[str]:
    """Problems (empty = all good): each missing, resized, altered or
    unexpected file, by relative path."""
    root = Path(backup_dir)
    problems: list[str] = []
    expected = {f.path: f for f in manifest.files}
    present = {p for p in expected if (root / p).is_file()}
    problems += [f"{MISSING_FILE}: {p}" for p in sorted(set(expected) - present)]
    actual = hash_files([root / p for p in sorted(present)], workers)
    for rel in sorted(present):
        size, digest = actual[root / rel]
        entry = expected[rel]
        if size != entry.size:
            problems.append(f"文件大小不符 size mismatch: {rel} ({size} ≠ {entry.size} bytes)")
        elif digest != entry.sha256:
            problems.append(
                f"校验和不符 checksum mismatch: {rel} (sha256 {digest[:16]}… ≠ "
                f"{entry.sha256[:16]}…)"
            )
    extra = {p.relative_to(root).as_posix() for p in list_data_files(root)} - set(expected)
    problems += [f"多余文件 unexpected file: {p}" for p in sorted(extra)]
    return problems
