"""The PITR drill job of backup_verification: target choice and scratch location (no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hisops.inventory.loader import load_inventory
from hisops.pitr.drill_job import drill_request, parse_target, scratch_root

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("choice", "target"),
    [
        ("auto", ("name", None)),
        ("", ("name", None)),
        ("latest", ("latest", None)),
        ("time:2026-12-01T10:00:00+08:00", ("time", "2026-12-01T10:00:00+08:00")),
        ("name: before-upgrade ", ("name", "before-upgrade")),
    ],
)
def test_pitr_target_choices(choice, target):
    assert parse_target(choice) == target


@pytest.mark.parametrize("choice", ["yesterday", "time:", "lsn:0/3000000"])
def test_an_unknown_pitr_target_is_refused_naming_the_choices(choice):
    with pytest.raises(ValueError, match="pitr_target must be auto, latest, time:<ISO time>"):
        parse_target(choice)


def test_scratch_root_is_beside_the_config_unless_set():
    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    _, srv = inv.locate_server("pg-main")
    assert scratch_root(srv) == Path(srv.pitr.config_path).parent / "scratch"
    moved = srv.model_copy(update={"pitr": srv.pitr.model_copy(update={"scratch_path": "/x/s"})})
    assert scratch_root(moved) == Path("/x/s")


def test_the_drill_request_carries_the_inventorys_time_zone_and_hospital_for_the_evidence():
    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    inv = inv.model_copy(update={"timezone": "Europe/Berlin", "hospital": "某某医院 Some hospital"})
    job = {"backup_id": 7, "database_id": "pg-main", "label": "20261201-010000F"}

    req = drill_request(
        job, inv, dsn_for=lambda _: "host=h port=5432 dbname=x", pgbackrest_for=lambda _: None
    )

    assert (req.tz, req.hospital) == ("Europe/Berlin", "某某医院 Some hospital")
    assert (req.backup_id, req.server_id, req.label) == (7, "pg-main", "20261201-010000F")
