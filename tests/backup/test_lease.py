"""The orphan guard: a backup whose try Airflow gave up is never published nor registered."""

from __future__ import annotations

import pytest
from hisops.backup.dump import BackupSuperseded, DumpSpec, backup_database

from tests.backup.conftest import backups_dir


def _spec(pg, his_db, tmp_path, lease) -> DumpSpec:
    return DumpSpec(
        database_id="d1",
        system_id="s1",
        dsn=pg.dsn(his_db),
        storage=backups_dir(tmp_path),
        jobs=1,
        compress=1,
        lease=lease,
    )


def test_a_superseded_try_publishes_and_registers_nothing(pg, catalog, his_db, tmp_path) -> None:
    asked: list[bool] = []

    def gone() -> bool:  # what an orphaned task process hears: Airflow no longer runs this try
        asked.append(True)
        return False

    with pytest.raises(BackupSuperseded, match="superseded"):
        backup_database(_spec(pg, his_db, tmp_path, gone), catalog)
    assert asked == [True]  # asked once, after the dump, before publishing
    [record] = catalog.backups_for("d1")
    assert record.state == "failed" and "superseded" in record.error
    root = backups_dir(tmp_path) / "d1"
    assert [p.name for p in root.iterdir()] == []  # no published directory, no .partial-* left


def test_a_current_try_registers_as_before(pg, catalog, his_db, tmp_path) -> None:
    outcome = backup_database(_spec(pg, his_db, tmp_path, lambda: True), catalog)
    assert catalog.get_backup(outcome.backup_id).state == "completed"
