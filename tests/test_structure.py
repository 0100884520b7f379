"""The capability template (README, Layout) as checks on the source: domain code knows no Airflow,
adapters do not import each other and do not write to the catalog, DAG tests live in tests/dags/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "include" / "hisops"
ADAPTERS = sorted((PACKAGE / "airflow").glob("*_tasks.py"))
#: Airflow-aware code: the glue package, the dev environment that starts Airflow for the demo,
#: the CLI (roles, pools, connections outside tasks)
AIRFLOW_AWARE = (PACKAGE / "airflow", PACKAGE / "devenv", PACKAGE / "cli.py")
#: CatalogRepository methods that change the catalog (by name): only services call them
WRITE_PREFIXES = (
    "add_",
    "record_",
    "register_",
    "start_",
    "finish_",
    "fail_",
    "mark_",
    "set_",
    "save_",
    "upsert_",
    "resolve_",
    "close_",
    "acknowledge_",
    "accept_",
    "claim_",
    "note_",
    "clear_",
    "prune_",
    "delete_",
)


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def catalog_methods() -> set[str]:
    from hisops.catalog.repository import CatalogRepository

    return {name for name in dir(CatalogRepository) if not name.startswith("_")}


def test_domain_packages_do_not_import_airflow():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if any(path.is_relative_to(p) for p in AIRFLOW_AWARE):
            continue
        bad = {m for m in imported_modules(path) if m.split(".")[0] == "airflow"}
        bad |= {m for m in imported_modules(path) if m.startswith("hisops.airflow")}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert offenders == []


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: p.name)
def test_adapters_do_not_import_each_other(path: Path):
    others = {f"hisops.airflow.{p.stem}" for p in ADAPTERS} - {f"hisops.airflow.{path.stem}"}
    assert imported_modules(path) & others == set()


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: p.name)
def test_adapters_do_not_write_to_the_catalog(path: Path):
    writes = {m for m in catalog_methods() if m.startswith(WRITE_PREFIXES)}
    assert writes, "no CatalogRepository write method found: the prefixes are out of date"
    called = {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert called & writes == set(), "the service records for itself (README, Layout)"


def test_dag_tests_live_in_tests_dags():
    """A test that loads a DAG file belongs in tests/dags/test_<dag_id>*.py."""
    dag_ids = {p.stem for p in (REPO / "dags").glob("*.py")}
    misplaced = []
    for path in (REPO / "tests").rglob("test_*.py"):
        text = path.read_text(encoding="utf-8")
        if path.parent.name == "dags" or '"dags"' not in text:
            continue
        if any(f'"{d}.py"' in text for d in dag_ids):
            misplaced.append(str(path.relative_to(REPO)))
    assert misplaced == []


def test_readme_lists_every_dag_and_no_other():
    """The README's DAG table claims only what dags/ holds, and all of it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## DAGs") : text.index("### What they do")]
    listed = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert listed == {p.stem for p in (REPO / "dags").glob("*.py")}
