"""Every DAG file: imports cleanly, cheaply, without touching the network, and is documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
PROBE = Path(__file__).with_name("parse_probe.py")
CJK = re.compile(r"[\u4e00-\u9fff]")


def probe(path: Path, **env: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=DAG_FILES, ids=lambda p: p.name)
def parsed(request) -> dict:
    return probe(request.param)


def test_there_are_dag_files():
    assert DAG_FILES, "dags/ holds no DAG file"


def test_file_defines_a_dag(parsed):
    assert parsed["dags"], "file defines no DAG object at module level"


def test_no_network_connection_or_variable_at_parse_time(parsed):
    assert parsed["events"] == []


def test_no_heavy_import_at_parse_time(parsed):
    assert parsed["heavy"] == []


# What a DAG file may pull in beyond airflow.sdk: our light modules and their small dependencies.
# A deterministic stand-in for "cheap to parse" (wall-clock budgets fail on a loaded machine).
LIGHT = {
    "airflow",
    "hisops",
    "croniter",
    "cron_descriptor",
    "asgiref",
    "packaging",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "yaml",
}


def test_parse_imports_only_light_modules(parsed):
    assert set(parsed["third_party"]) <= LIGHT, sorted(set(parsed["third_party"]) - LIGHT)


def test_dag_metadata_for_the_people_who_use_it(parsed):
    for dag in parsed["dags"]:
        assert CJK.search(dag["display_name"] or ""), (
            f"{dag['dag_id']}: dag_display_name must be Chinese-first"
        )
        assert "hisops" in dag["tags"] and len(dag["tags"]) >= 2
        assert dag["owner"] and dag["owner"] != "airflow"
        assert isinstance(dag["retries"], int) and dag["retries"] >= 1
        doc = dag["doc_md"]
        assert len(doc) > 200 and CJK.search(doc), f"{dag['dag_id']}: doc_md runbook missing"
        assert "失败" in doc or "fails" in doc.lower(), (
            f"{dag['dag_id']}: runbook must say what to do on failure"
        )
        assert dag["access_control"], f"{dag['dag_id']}: access_control (第十三条) missing"


def test_dagbag_has_no_import_errors(tmp_path):
    code = (
        "from airflow.dag_processing.dagbag import DagBag; import json;"
        f"b = DagBag(dag_folder={str(REPO / 'dags')!r});"
        "print(json.dumps({'errors': b.import_errors, 'dags': sorted(b.dag_ids)}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert len(out["dags"]) >= len(DAG_FILES)


def test_invalid_inventory_becomes_a_precise_import_error(tmp_path):
    bad = tmp_path / "inv.yaml"
    text = (REPO / "inventory" / "hospital.example.yaml").read_text()
    bad.write_text(text.replace("keep_daily: 14", "keep_daily: 0", 1))
    code = (
        "from airflow.dag_processing.dagbag import DagBag; import json;"
        f"b = DagBag(dag_folder={str(REPO / 'dags' / 'hisops_selfcheck.py')!r});"
        "print(json.dumps(b.import_errors, ensure_ascii=False))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HISOPS_INVENTORY": str(bad)},
    )
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(errors) == 1
    message = next(iter(errors.values()))
    assert f"{bad}: systems[2].databases[0].backup.keep_daily: must be >= 1" in message
