"""Hostile inventories (item 9): bounded in time and memory, one precise line each, exit 1.

Each file is built from the example so the only problem is the hostile part. The CLI runs in a
subprocess with a timeout and an address-space limit: a hang or a blow-up fails the test instead
of the machine; the DAG import error is checked through a real DagBag.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hisops.inventory import InventoryError, load_inventory

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventory" / "hospital.example.yaml"
HISOPS = Path(sys.executable).parent / "hisops"
MEMORY_LIMIT = 1536 * 1024 * 1024  # the CLI must stay far below this on every hostile file


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def with_hospital(value: str) -> str:
    """The example with `hospital:` replaced (a place that accepts any YAML node)."""
    lines = example_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("hospital:"))
    lines[i] = f"hospital: {value}"
    return "\n".join(lines) + "\n"


def billion_laughs() -> str:
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"a{i}: &a{i} [{','.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    return "x-bomb:\n" + "".join(f"  {line}\n" for line in levels) + "hospital: *a9\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cli_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HISOPS), "inventory", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    return info.value.problems


HOSTILE = {
    # name → (file text builder, the exact problem after "<file>: ")
    "billion_laughs": (
        lambda: (
            billion_laughs()
            + "\n".join(ln for ln in example_text().splitlines() if not ln.startswith("hospital:"))
            + "\n"
        ),
        "(file): YAML aliases expand to more than 100000 nodes (alias bomb?); write the values out",
    ),
    "deep_nesting": (
        lambda: with_hospital("[" * 100_000),
        "line 11, column 74: YAML nested deeper than 64 levels",
    ),
    "huge_list": (
        lambda: with_hospital("[" + ",".join(["1"] * 20_000) + "]"),
        "line 11, column 11: a YAML list or mapping with more than 10000 items",
    ),
    "nan_threshold": (
        lambda: example_text().replace(
            "connections_pct: {warn: 80, critical: 95}",
            "connections_pct: {warn: .nan, critical: 95}",
            1,
        ),
        "thresholds.connections_pct.warn: must be a finite number (not .nan / .inf)",
    ),
    "inf_threshold": (
        lambda: example_text().replace(
            "connections_pct: {warn: 80, critical: 95}",
            "connections_pct: {warn: 80, critical: .inf}",
            1,
        ),
        "thresholds.connections_pct.critical: must be a finite number (not .nan / .inf)",
    ),
    "keep_daily_1e32": (
        lambda: example_text().replace("keep_daily: 14", "keep_daily: 1.0e+32", 1),
        "systems[2].databases[0].backup.keep_daily: must be <= 3660",
    ),
    "keep_daily_big_int": (
        lambda: example_text().replace("keep_daily: 14", "keep_daily: " + "9" * 40, 1),
        "systems[2].databases[0].backup.keep_daily: must be <= 3660",
    ),
    "bidi_override": (
        lambda: example_text().replace("name: 门诊系统", "name: 门诊\u202e系统", 1),
        "systems[0].name: contains the invisible character U+202E (RIGHT-TO-LEFT OVERRIDE); "
        "remove it",
    ),
    "zero_width": (
        lambda: example_text().replace("name_en: Outpatient", "name_en: Out\u200bpatient", 1),
        "systems[0].name_en: contains the invisible character U+200B (ZERO WIDTH SPACE); remove it",
    ),
}


def test_example_has_the_lines_the_cases_edit() -> None:
    text = example_text()
    for needle in (
        "connections_pct: {warn: 80, critical: 95}",
        "keep_daily: 14",
        "name: 门诊系统",
        "name_en: Outpatient",
    ):
        assert needle in text


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_one_line_exit_1(tmp_path: Path, name: str) -> None:
    build, problem = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(build(), encoding="utf-8")
    result = cli_validate(path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr == f"{path}: {problem}\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(example_text() + "# " + "x" * (3 * 1024 * 1024) + "\n", encoding="utf-8")
    assert problems_of(path) == [
        f"{path}: (file): larger than 2 MiB (3.0 MiB): is this the inventory?"
    ]


def test_six_million_item_list_via_aliases_is_refused_quickly(tmp_path: Path) -> None:
    """A 6-million-item list needs aliases to fit in 2 MiB: refused before anything is built."""
    row = "[" + ",".join(["x"] * 2000) + "]"
    text = "x-list:\n  a: &a " + row + "\n  b: &b [" + ",".join(["*a"] * 3000) + "]\n"
    path = tmp_path / "six_million.yaml"
    path.write_text(text + example_text(), encoding="utf-8")
    result = cli_validate(path)
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}: (file): YAML aliases expand to more than 100000 nodes (alias bomb?); "
        "write the values out\n"
    )


def test_duplicate_conn_id_is_an_error_unless_marked(tmp_path: Path) -> None:
    text = example_text().replace("conn_id: his_emr", "conn_id: his_outpatient", 1)
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    [line] = problems_of(path)
    assert line.startswith(
        f"{path}: systems[2].databases[0].conn_id: conn_id 'his_outpatient' is also used "
        "by systems[0].databases[0]"
    )
    assert "conn_id_shared: true" in line
    marked = text.replace(
        "conn_id: his_outpatient", "conn_id: his_outpatient\n        conn_id_shared: true"
    )
    path.write_text(marked, encoding="utf-8")
    assert load_inventory(path).find_database("his_emr").conn_id == "his_outpatient"


def test_hostile_inventory_is_a_precise_dag_import_error(tmp_path: Path) -> None:
    bad = tmp_path / "inv.yaml"
    bad.write_text(with_hospital("[" * 100_000), encoding="utf-8")
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
    [message] = errors.values()
    assert f"{bad}: line 11, column 74: YAML nested deeper than 64 levels" in message
    assert "RecursionError" not in message
