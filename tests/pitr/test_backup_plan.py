"""pitr_backup's decisions outside a cluster: which servers, where they sit in the inventory."""

from __future__ import annotations

from pathlib import Path

import pytest
from hisops.inventory.loader import load_inventory
from hisops.pitr.schedule import TYPE_CHOICES, pitr_server_ids
from hisops.pitr.service import inventory_path, server_ids

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inv():
    return load_inventory(REPO / "inventory" / "hospital.example.yaml")


def test_servers_with_a_pitr_block_or_the_forms_subset(inv):
    assert pitr_server_ids(inv) == ["pg-main"]
    assert server_ids(inv, None) == ["pg-main"] and server_ids(inv, ["pg-main"]) == ["pg-main"]
    with pytest.raises(ValueError, match="servers with pitr not in the inventory: pg-other"):
        server_ids(inv, ["pg-other"])


def test_messages_name_where_the_server_sits_in_the_inventory(inv):
    (i, system), j = next(
        ((i, s), j)
        for i, s in enumerate(inv.systems)
        for j, srv in enumerate(s.servers)
        if srv.id == "pg-main"
    )
    assert inventory_path(inv, "pg-main") == f"systems[{i}].servers[{j}]."
    assert inventory_path(inv, "nowhere") == ""


def test_the_forms_type_choices():
    assert TYPE_CHOICES == ("auto", "full", "diff", "incr")
