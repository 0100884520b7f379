"""Storage markers: proof that a worker sees the storage the catalog knows.

Backups (``backup_storage.path``) and reports/evidence (``reports.path``) are written by one task
and read by another, maybe on another machine, so every worker must mount the same storage there.
The first task that uses a location writes a marker file ``.hisops-storage-id`` (a random id,
created exclusively, 0600) and records the id in the catalog; every later task compares the marker
it sees with the catalog's id. A missing or different marker means this worker sees other storage
(mount missing, another disk, a local directory): the task fails with :class:`StorageMismatch`
instead of writing backups nobody else can see or reporting "nothing to drill".
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository

MARKER_NAME = ".hisops-storage-id"
BACKUPS = "backups"  # backup_storage.path
REPORTS = "reports"  # reports.path (reports and drill evidence)
CHECK_ID = "storage.marker"  # incident check id for a worker that cannot see the shared storage


class StorageMismatch(RuntimeError):
    """This worker does not see the shared storage the catalog knows (message: Chinese, English)."""

    def __init__(self, name: str, path: Path, problem_zh: str, problem_en: str) -> None:
        self.name, self.path = name, path
        self.problem_zh, self.problem_en = problem_zh, problem_en
        super().__init__(
            f"共享存储 {name} ({path}) {problem_zh} — shared storage {name} at {path}: "
            f"{problem_en}. 检查本机挂载 check this worker's mount (NFS) against the others "
            f"(README: Production)."
        )


@dataclass(frozen=True)
class Marker:
    storage_id: str
    name: str
    created_at: str


def marker_path(root: Path) -> Path:
    return root / MARKER_NAME


def read_marker(root: Path) -> Marker | None:
    """The marker in ``root``, or None when there is none (unreadable or invalid: raises)."""
    try:
        data = json.loads(marker_path(root).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StorageMismatch(
            "?", root, f"标记文件不可读 marker unreadable: {exc}", f"marker file unreadable: {exc}"
        ) from exc
    return Marker(
        str(data["storage_id"]), str(data.get("name", "")), str(data.get("created_at", ""))
    )


def _create_marker(root: Path, name: str) -> Marker:
    """Write a new marker exclusively; if another worker won the race, return theirs."""
    marker = Marker(secrets.token_hex(16), name, datetime.now(UTC).isoformat())
    try:
        fd = os.open(marker_path(root), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _wait_for_marker(root)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(
            {"storage_id": marker.storage_id, "name": name, "created_at": marker.created_at}, fh
        )
        fh.flush()
        os.fsync(fh.fileno())
    return marker


def _wait_for_marker(root: Path, tries: int = 20) -> Marker:
    """Another worker is writing the marker right now: read it once it is complete."""
    for _ in range(tries):
        try:
            found = read_marker(root)
        except StorageMismatch:
            found = None
        if found is not None:
            return found
        time.sleep(0.1)
    found = read_marker(root)
    if found is None:
        raise StorageMismatch("?", root, "标记文件消失 marker vanished", "marker file vanished")
    return found


def require_visible(repo: CatalogRepository, path: Path) -> None:
    """Before anything concludes "this backup's files are gone": is the storage holding ``path``
    visible here at all? (Raises StorageMismatch when not — a worker problem, not a lost backup.)"""
    known = repo.storage_location(BACKUPS)
    if known is not None and path.is_relative_to(known.path):
        check_storage(repo, BACKUPS, Path(known.path))


def check_storage(repo: CatalogRepository, name: str, root: Path, actor: str | None = None) -> str:
    """Make sure ``root`` is the storage the catalog knows as ``name``; returns its storage id.

    First use (no id in the catalog): create the marker (or adopt the one there) and record it.
    Later: the marker must exist and carry the recorded id, else :class:`StorageMismatch`.
    """
    known = repo.storage_location(name)
    if known is None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker = read_marker(root) or _create_marker(root, name)
        known = repo.claim_storage_location(name, marker.storage_id, str(root), actor)
    marker = read_marker(root) if root.is_dir() else None
    if marker is None:
        raise StorageMismatch(
            name,
            root,
            f"不可见：缺少标记文件 {MARKER_NAME}（目录为空或未挂载）",
            f"not visible: no {MARKER_NAME} marker (empty directory or not mounted; "
            f"the catalog knows storage id {known.storage_id[:8]}…)",
        )
    if marker.storage_id != known.storage_id:
        raise StorageMismatch(
            name,
            root,
            f"标记不符：{marker.storage_id[:8]}… ≠ 目录库 {known.storage_id[:8]}…",
            f"marker {marker.storage_id[:8]}… does not match the catalog's "
            f"{known.storage_id[:8]}… (another disk than the other workers)",
        )
    return known.storage_id
