"""hisops.cleanup.service's small task return values and the run it opens."""

from __future__ import annotations

from pathlib import Path

from hisops.cleanup import service
from hisops.cleanup.results import StepResult
from hisops.inventory.loader import load_inventory
from hisops.runinfo import RunInfo

REPO = Path(__file__).resolve().parents[2]


def test_counts_add_up_and_count_protected_steps_as_failed():
    steps = [
        StepResult("host", "h1", "logs", "ok", files=3, bytes_freed=300),
        StepResult("host", "h1", "dumps", "protected"),
        StepResult("catalog", "*", "metric_sample", "dry_run", rows=40),
        StepResult("host", "h2", "logs", "failed"),
    ]
    assert service.counts(steps) == {
        "steps": 4,
        "files": 3,
        "rows": 40,
        "bytes_freed": 300,
        "failed": 2,
    }
    assert service.counts([]) == {"steps": 0, "files": 0, "rows": 0, "bytes_freed": 0, "failed": 0}


def test_open_run_previews_a_manual_auto_run_and_records_it(catalog):
    inv = load_inventory(REPO / "inventory" / "hospital.example.yaml")
    run = RunInfo(dag_id="retention_cleanup", run_id="manual__c", triggering_user="operator1")
    started = service.open_run(catalog, inv, run, "auto")
    assert started["dry_run"] is True
    record = catalog.get_cleanup_run(started["cleanup_run_id"])
    assert (record.run_id, record.dry_run) == ("manual__c", True)
    assert service.open_run(catalog, inv, run, "no") == {
        "cleanup_run_id": started["cleanup_run_id"],  # a retried task gets the same run back
        "dry_run": False,
    }
