"""The adapter rule of the capability template (issue 7): no adapter imports another adapter, and
the domain packages never import Airflow or the adapters."""

from __future__ import annotations

import ast
from pathlib import Path

HISOPS = Path(__file__).resolve().parents[2] / "include" / "hisops"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _is_adapter(module: str) -> bool:
    return module.startswith("hisops.airflow.") and module.endswith("_tasks")


def test_no_adapter_imports_another_adapter():
    adapters = sorted((HISOPS / "airflow").glob("*_tasks.py"))
    assert len(adapters) >= 5  # the scan sees them
    offenders = [
        f"{path.name} imports {module}"
        for path in adapters
        for module in sorted(_imports(path))
        if _is_adapter(module) and module != f"hisops.airflow.{path.stem}"
    ]
    assert offenders == []


def test_backup_verify_and_pitr_domains_know_no_airflow():
    offenders = [
        f"{path.relative_to(HISOPS)} imports {module}"
        for package in ("backup", "verify", "pitr", "restore")
        for path in sorted((HISOPS / package).rglob("*.py"))
        for module in sorted(_imports(path))
        if module.split(".")[0] == "airflow" or module.startswith("hisops.airflow")
    ]
    assert offenders == []


def test_the_scan_would_see_an_adapter_import(tmp_path):
    probe = tmp_path / "x_tasks.py"
    probe.write_text("from hisops.airflow import backup_tasks\nimport airflow.sdk\n")
    assert "hisops.airflow.backup_tasks" in _imports(probe)
    assert _is_adapter("hisops.airflow.backup_tasks") and "airflow.sdk" in _imports(probe)
