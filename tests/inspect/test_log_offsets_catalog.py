"""Log offsets over days through `hisops.inspect.run` and a real catalog (item 1).

The engine is the real one (host script and log scan on this machine); only the files change
between "days": appended lines, a rotation, a truncation, a glob that also matches the rotated
files, and offsets left by another reader.
"""

from __future__ import annotations

import os
from pathlib import Path

from hisops.inspect import run as R
from hisops.inventory.models import Inventory
from hisops.targets.runner import LocalRunner

from tests.inspect.test_log_scan import lines, write


def inventory(glob: Path) -> Inventory:
    return Inventory.model_validate(
        {
            "version": 1,
            "hospital": "测试医院",
            "maintenance_window": {"start": "01:00", "end": "05:00"},
            "backup_storage": {"path": "/tmp/b"},
            "reports": {"path": "/tmp/r"},
            "systems": [
                {
                    "id": "s1",
                    "name": "门诊系统",
                    "name_en": "Outpatient",
                    "hosts": [
                        {
                            "id": "h1",
                            "local": True,
                            "disk_paths": [],
                            "logs": [{"path": str(glob), "patterns": {"error": "ERROR"}}],
                        }
                    ],
                }
            ],
        }
    )


def day(catalog, inv: Inventory, name: str, **flags) -> dict:
    """One day's inspection of the system; its log findings by check id."""
    run_pk = catalog.start_inspection_run("daily_inspection", name)
    access = R.Access(dsn_for=lambda db: "unused", runner_for=lambda host: LocalRunner())
    R.inspect_system(
        inv, inv.systems[0], catalog, R.RunContext(run_pk, **flags), access, progress=lambda _: None
    )
    return {f.check_id: f for f in catalog.findings_for(run_pk) if f.target_kind == "log"}


def test_offsets_from_the_catalog_are_used_day_after_day(catalog, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, lines(5) + lines(3, "ERROR"))
    inv = inventory(log)
    assert day(catalog, inv, "d1")["log.error"].value == 3
    write(log, lines(2, "ERROR", 50))
    second = day(catalog, inv, "d2")
    assert second["log.error"].value == 2  # only the appended lines, not from byte 0 again
    assert second["log.files"].details["files"][0]["reason"] == "continued"
    assert day(catalog, inv, "d3")["log.error"].value == 0


def test_rotation_reads_the_rotated_tail_then_the_new_file(catalog, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, lines(5) + lines(2, "ERROR"))
    inv = inventory(log)
    assert day(catalog, inv, "d1")["log.error"].value == 2
    write(log, lines(1, "ERROR", 10))  # written before the rotation: only in the rotated file
    os.rename(log, tmp_path / "app.log.1")
    write(log, lines(2, "ERROR", 20))
    second = day(catalog, inv, "d2")
    assert second["log.error"].value == 3
    assert second["log.error"].details["rotated_tail_read"] == [str(log)]


def test_truncation_reads_from_the_start(catalog, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, lines(20) + lines(3, "ERROR"))
    inv = inventory(log)
    assert day(catalog, inv, "d1")["log.error"].value == 3
    write(log, lines(1, "ERROR", 99), mode="w")  # copytruncate
    second = day(catalog, inv, "d2")
    assert second["log.error"].value == 1
    assert second["log.files"].details["files"][0]["reason"] == "truncated"


def test_glob_matching_rotated_files_counts_each_line_once(catalog, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(tmp_path / "app.log.1", lines(4, "ERROR", 500))  # an older rotation
    write(log, lines(3) + lines(2, "ERROR"))
    inv = inventory(tmp_path / "app.log*")
    assert day(catalog, inv, "d1")["log.error"].value == 6  # first scan reads everything once
    write(log, lines(1, "ERROR", 30))
    os.rename(tmp_path / "app.log.1", tmp_path / "app.log.2")  # logrotate: shift, then rename
    os.rename(log, tmp_path / "app.log.1")
    write(log, lines(1, "ERROR", 40))
    second = day(catalog, inv, "d2")
    assert second["log.error"].value == 2  # one appended before the rotation, one in the new file
    reasons = {Path(f["path"]).name: f["reason"] for f in second["log.files"].details["files"]}
    assert reasons == {"app.log": "rotated", "app.log.1": "renamed", "app.log.2": "renamed"}
    assert day(catalog, inv, "d3")["log.error"].value == 0


def test_another_readers_offsets_do_not_look_like_a_rotation(catalog, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, lines(3) + lines(2, "ERROR"))
    catalog.save_log_offsets("h1", "another-worker", 1, {str(log): (log.stat().st_ino + 12345, 10)})
    first = day(catalog, inventory(log), "d1")
    assert first["log.error"].value == 2 and "rotated_tail_read" in first["log.error"].details
    assert first["log.error"].details["rotated_tail_read"] == []
    assert first["log.files"].details["files"][0]["reason"] == "new"
    assert catalog.log_offsets("h1", "another-worker") == {
        str(log): (log.stat().st_ino + 12345, 10)
    }
