from __future__ import annotations

import pytest
from hisops.inventory.loader import load_inventory

from tests.conftest import REPO
from tests.kpi.seed import seed_november


@pytest.fixture
def inventory():
    return load_inventory(REPO / "inventory" / "hospital.example.yaml")


@pytest.fixture
def seeded(catalog):
    """The catalog with the known month of tests/kpi/seed.py."""
    seed_november(catalog)
    return catalog
