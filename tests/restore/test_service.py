"""The restore services' refusals: audited in a real catalog, roles asked only when they matter."""

from __future__ import annotations

from pathlib import Path

import pytest
from hisops.inventory.loader import load_inventory
from hisops.restore import pitr, service
from hisops.restore.errors import Refused
from hisops.runinfo import RunInfo

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "hospital.example.yaml"


def _env(catalog, roles_of) -> service.RestoreEnv:
    return service.RestoreEnv(
        repo=catalog,
        run=RunInfo(dag_id="restore_database", run_id="manual__t", triggering_user="sa"),
        inventory=load_inventory(EXAMPLE),
        dsn_for=lambda _db: "host=127.0.0.1 port=1 dbname=unused",  # never reached here
        roles_of=roles_of,
    )


class Lookup:
    """A role lookup that records who was asked and fails like an unreadable FAB table."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def __call__(self, user: str | None) -> set[str]:
        self.asked.append(user)
        raise RuntimeError("cannot read the roles of 'sa': define the connection")


def _refusals(catalog, action: str) -> list:
    found = [e for e in catalog.audit_events() if e.action == action and e.result == "refused"]
    return sorted(found, key=lambda e: e.id)


def test_overwrite_refused_when_roles_cannot_be_read_and_roles_asked_only_after_confirmation(
    catalog,
):
    lookup = Lookup()
    env = _env(catalog, lookup)
    form = {"database_id": "his_emr", "backup_id": "latest_verified", "target": "overwrite"}
    with pytest.raises(Refused, match="confirm"):
        service.authorize_restore(env, {**form, "confirm": "his_emr "})
    assert lookup.asked == []  # a wrong confirmation is refused before anyone is asked
    with pytest.raises(Refused, match="cannot read the roles"):
        service.authorize_restore(env, {**form, "confirm": "his_emr"})
    assert lookup.asked == ["sa"]
    wrong, unreadable = _refusals(catalog, service.RESTORE_ACTION)
    assert wrong.details["confirm_given"] and "confirm" not in wrong.details["params"]
    assert unreadable.actor == "sa" and "cannot read the roles" in unreadable.details["reason"]


def test_unknown_database_or_server_is_refused_naming_the_known_ones(catalog):
    env = _env(catalog, Lookup())
    with pytest.raises(Refused) as logical:
        service.authorize_restore(env, {"database_id": "his_nope", "backup_id": 1})
    assert str(logical.value).startswith("no database 'his_nope'") and "his_emr" in str(
        logical.value
    )
    with pytest.raises(Refused, match="no server 'pg-nope'"):
        pitr.authorize_pitr_restore(env, {"server_id": "pg-nope", "confirm": "pg-nope"})
    (event,) = _refusals(catalog, pitr.ACTION)
    assert event.target == "pg-nope" and event.details["reason"].startswith("no server")


def test_pitr_restore_asks_for_roles_only_after_the_exact_server_id(catalog):
    lookup = Lookup()
    env = _env(catalog, lookup)
    for confirm in (None, "pg-main ", "PG-MAIN"):
        with pytest.raises(Refused, match="server id"):
            pitr.authorize_pitr_restore(env, {"server_id": "pg-main", "confirm": confirm})
    assert lookup.asked == []
    with pytest.raises(Refused, match="cannot read the roles"):
        pitr.authorize_pitr_restore(env, {"server_id": "pg-main", "confirm": "pg-main"})
    assert lookup.asked == ["sa"] and len(_refusals(catalog, pitr.ACTION)) == 4
