"""The catalog package is light: plain records import without SQLAlchemy (issue 7)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = (
    "import sys, {module}; "
    "heavy = sorted(m for m in ('sqlalchemy', 'alembic', 'psycopg2') if m in sys.modules); "
    "print(','.join(heavy))"
)


@pytest.mark.parametrize("module", ["hisops.catalog", "hisops.catalog.records"])
def test_records_import_without_sqlalchemy(module):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_repository_still_pulls_in_sqlalchemy():
    """The probe can fail: importing the repository does load SQLAlchemy."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(module="hisops.catalog.repository")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sqlalchemy" in proc.stdout.strip().split(",")
