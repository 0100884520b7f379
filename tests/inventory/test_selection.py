"""The one id-selection helper of the trigger forms (databases, hosts, servers)."""

from __future__ import annotations

import pytest
from hisops.inventory.selection import select_ids

KNOWN = ["his_outpatient", "his_inpatient", "his_emr"]


def test_nothing_wanted_means_all_in_inventory_order():
    assert select_ids(KNOWN, None, "数据库 databases") == KNOWN
    assert select_ids(KNOWN, [], "数据库 databases") == KNOWN


def test_a_subset_keeps_inventory_order():
    assert select_ids(KNOWN, ["his_emr", "his_outpatient"], "数据库 databases") == [
        "his_outpatient",
        "his_emr",
    ]


def test_unknown_ids_are_refused_naming_them_and_the_known_ones():
    with pytest.raises(ValueError) as err:
        select_ids(KNOWN, ["his_emr", "nope", "gone"], "数据库 databases")
    message = str(err.value)
    assert "清单中没有这些数据库 databases not in the inventory: nope, gone" in message
    assert "(known: his_outpatient, his_inpatient, his_emr)" in message
    with pytest.raises(ValueError, match=r"\(known: none\)"):
        select_ids([], ["x"], "主机 hosts")
