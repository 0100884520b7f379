"""Storage markers against a real catalog: first use records, later uses must see the same id."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hisops.storage.marker import (
    BACKUPS,
    MARKER_NAME,
    REPORTS,
    StorageMismatch,
    check_storage,
    read_marker,
)


def test_first_use_creates_the_marker_and_records_it(catalog, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    storage_id = check_storage(catalog, BACKUPS, root, actor="db_backup")
    marker = root / MARKER_NAME
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert json.loads(marker.read_text())["storage_id"] == storage_id
    known = catalog.storage_location(BACKUPS)
    assert (known.storage_id, known.path, known.created_by) == (storage_id, str(root), "db_backup")
    assert check_storage(catalog, BACKUPS, root) == storage_id  # the same storage again: fine
    assert catalog.storage_location(REPORTS) is None  # each location has its own id


def test_a_worker_without_the_mount_fails_clearly(catalog, tmp_path: Path) -> None:
    check_storage(catalog, BACKUPS, tmp_path / "nfs")
    empty = tmp_path / "local-dir"  # what a worker without the NFS mount sees at the same path
    empty.mkdir()
    with pytest.raises(StorageMismatch, match="not visible: no .hisops-storage-id"):
        check_storage(catalog, BACKUPS, empty)
    with pytest.raises(StorageMismatch, match="不可见"):
        check_storage(catalog, BACKUPS, tmp_path / "absent")
    assert not (tmp_path / "absent").exists()  # never created behind the operator's back


def test_another_disk_with_its_own_marker_is_refused(catalog, tmp_path: Path) -> None:
    check_storage(catalog, BACKUPS, tmp_path / "a")
    other = tmp_path / "b"
    other.mkdir()
    (other / MARKER_NAME).write_text(json.dumps({"storage_id": "f" * 32, "name": BACKUPS}))
    with pytest.raises(StorageMismatch, match="does not match the catalog"):
        check_storage(catalog, BACKUPS, other)


def test_an_existing_marker_is_adopted_by_a_new_catalog(catalog, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    root.mkdir()
    (root / MARKER_NAME).write_text(json.dumps({"storage_id": "a" * 32, "name": BACKUPS}))
    assert check_storage(catalog, BACKUPS, root) == "a" * 32
    assert read_marker(root).storage_id == catalog.storage_location(BACKUPS).storage_id
