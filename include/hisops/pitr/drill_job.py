"""The PITR drill of one physical backup as a job of backup_verification: its request, its target.

``hisops.verify.plan`` plans physical jobs beside logical ones; this module turns such a job into a
:class:`hisops.pitr.drill.PitrDrillRequest` (no Airflow: connections are resolved by the callables
the adapter passes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.inventory.models import Inventory, PgServer
    from hisops.pitr.drill import PitrDrillRequest
    from hisops.pitr.pgbackrest import PgBackRest

TARGET_CHOICES = "auto, latest, time:<ISO time> or name:<restore point>"


def parse_target(choice: str) -> tuple[str, str | None]:
    """The form's pitr_target: auto (a restore point hisops makes now), latest, time:<ISO>,
    name:<point> → (target kind, value)."""
    if choice in ("auto", ""):
        return "name", None
    if choice == "latest":
        return "latest", None
    kind, _, value = choice.partition(":")
    if kind in ("time", "name") and value.strip():
        return kind, value.strip()
    raise ValueError(f"pitr_target must be {TARGET_CHOICES}, not {choice!r}")


def scratch_root(srv: PgServer) -> Path:
    """Where PITR drills restore (must be reachable by the PostgreSQL OS user): pitr.scratch_path,
    else a ``scratch`` folder beside the hisops-written pgBackRest config."""
    return (
        Path(srv.pitr.scratch_path)
        if srv.pitr.scratch_path
        else Path(srv.pitr.config_path).parent / "scratch"
    )


def drill_request(
    job: Mapping[str, Any],
    inventory: Inventory,
    *,
    dsn_for: Callable[[Any], str],
    pgbackrest_for: Callable[[PgServer], PgBackRest],
) -> PitrDrillRequest:
    """The request for one planned physical job (server, label, target, databases to check)."""
    from psycopg2.extensions import parse_dsn

    from hisops.pitr.drill import PitrDrillRequest

    _, srv = inventory.locate_server(job["database_id"])
    kind, value = parse_target(job.get("pitr_target") or "auto")
    dbs = tuple(
        (db, parse_dsn(dsn_for(db)).get("dbname", db.id))
        for _, db in inventory.all_databases()
        if db.server == srv.id
    )
    return PitrDrillRequest(
        backup_id=job["backup_id"],
        server_id=srv.id,
        label=job["label"],
        production_dsn=dsn_for(srv),
        production_datadir=srv.data_directory,
        pgbr=pgbackrest_for(srv),
        scratch_root=scratch_root(srv),
        evidence_root=inventory.resolve_path(inventory.reports.path) / "verification",
        databases=dbs,
        target_kind=kind,
        target_value=value,
        pg_bindir=srv.pg_bindir,
        mode=job.get("mode", "fast"),
        os_user=srv.pitr.os_user,
        tz=inventory.timezone,
        hospital=inventory.hospital,
    )
