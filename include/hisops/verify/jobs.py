"""Running planned drill jobs: one job → its drill (logical or PITR) → a small result; the cleanup.

The jobs come from :mod:`hisops.verify.plan`. How targets are reached (DSNs, the drill server,
secrets, pgBackRest, the checked storage roots) is given as :class:`DrillAccess` by the adapter
(``hisops.airflow.verify_tasks``) or a test; nothing here imports Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.inventory.models import Database, Inventory, PgServer
    from hisops.pitr.pgbackrest import PgBackRest
    from hisops.verify.drill import DrillRequest

log = logging.getLogger(__name__)

MAX_LINES = 40  # failures / failed checks kept in XCom and the catalog (the evidence has them all)


@dataclass(frozen=True)
class DrillAccess:
    """How a drill reaches its targets; the Airflow glue resolves connections, tests pass theirs."""

    #: DSN of an inventory database or server (its own connection)
    dsn_for: Callable[[Any], str]
    #: DSN of the server that hosts scratch databases for a database
    drill_server_dsn: Callable[[Database], str]
    #: the key of an encrypted backup directory (None: not encrypted, or not usable — the drill
    #: then reports the fault)
    encryption_key: Callable[[Path], str | None]
    #: pgBackRest for a server with a pitr: block
    pgbackrest_for: Callable[[PgServer], PgBackRest] | None = None
    #: the shared backup storage, checked (raises when this worker does not see it)
    backup_root: Callable[[], Path] | None = None
    #: the shared reports storage (drill evidence), checked the same way
    reports_root: Callable[[], Path] | None = None


def _reports_root(inventory: Inventory, access: DrillAccess) -> Path:
    if access.reports_root is not None:
        return access.reports_root()
    return inventory.resolve_path(inventory.reports.path)


def drill_request(
    job: Mapping[str, Any],
    inventory: Inventory,
    access: DrillAccess,
    *,
    before_checks: Callable[[str], None] | None = None,
) -> DrillRequest:
    """The request of one planned logical job (backup, scratch server, evidence, key, depth)."""
    from hisops.verify.drill import DrillRequest

    if access.backup_root is not None:
        access.backup_root()
    _, db = inventory.locate_database(job["database_id"])
    backup_dir = Path(job["backup_dir"])
    return DrillRequest(
        backup_id=job["backup_id"],
        database_id=db.id,
        backup_dir=backup_dir,
        server_dsn=access.drill_server_dsn(db),
        evidence_root=_reports_root(inventory, access) / "verification",
        scratch_name=job["scratch_db"],
        database=db,
        jobs=db.backup.jobs,
        mode=job.get("mode", "fast"),
        pg_bindir=db.pg_bindir,
        encryption_key=access.encryption_key(backup_dir),
        expected_manifest_sha256=job.get("manifest_sha256"),
        before_checks=before_checks,
        tz=inventory.timezone,
        hospital=inventory.hospital,
    )


def trim(result: Mapping[str, Any]) -> dict[str, Any]:
    """A drill result small enough for XCom (the evidence and the log have every line)."""
    return {
        **result,
        "failures": result["failures"][:MAX_LINES],
        "failed_checks": result["failed_checks"][:MAX_LINES],
    }


def _vanished_result(job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "backup_id": job["backup_id"],
        "database_id": job["database_id"],
        "ok": False,
        "fault": "missing",
        "failures": [job["vanished"]],
        "system_id": job["system_id"],
    }


def run_job(
    job: Mapping[str, Any],
    inventory: Inventory,
    access: DrillAccess,
    *,
    before_checks: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Drill one planned job; a job whose files vanished at planning is reported, not drilled."""
    from hisops.pitr.drill import run_pitr_drill
    from hisops.pitr.drill_job import drill_request as pitr_request
    from hisops.verify.drill import run_drill

    if job.get("vanished"):  # recorded at planning (missing, incident, notification)
        log.error("备份文件已不在 backup files are not there: %s", job["vanished"])
        return _vanished_result(job)
    if job.get("kind") == "physical":
        if access.pgbackrest_for is None:
            raise ValueError("a physical backup's drill needs DrillAccess.pgbackrest_for")
        request = pitr_request(
            job, inventory, dsn_for=access.dsn_for, pgbackrest_for=access.pgbackrest_for
        )
        result = run_pitr_drill(request)
    else:
        result = run_drill(drill_request(job, inventory, access, before_checks=before_checks))
    for line in result.failures[:MAX_LINES]:
        log.error("演练发现 drill found: %s", line)
    return {**trim(result.as_dict()), "system_id": job["system_id"]}


def drop_scratch(
    jobs: Iterable[Mapping[str, Any]] | None, inventory: Inventory, access: DrillAccess
) -> list[str]:
    """Teardown: drop every planned scratch database that still exists (guarded by its name
    pattern), stale PITR scratch directories, and scratch databases killed workers left."""
    from hisops.pitr.drill import remove_stale
    from hisops.pitr.drill_job import scratch_root
    from hisops.verify.scratch import drop_database, drop_stale

    dropped: list[str] = []
    servers: dict[str, str] = {}
    for _, srv in inventory.all_servers():
        if srv.pitr:
            dropped += remove_stale(scratch_root(srv))
    for job in jobs or []:
        if job.get("kind") == "physical":
            continue  # the PITR drill stops and removes its scratch cluster itself
        _, db = inventory.locate_database(job["database_id"])
        dsn = servers.setdefault(db.id, access.drill_server_dsn(db))
        if drop_database(dsn, job["scratch_db"]):
            dropped.append(job["scratch_db"])
    for dsn in set(servers.values()):
        dropped += drop_stale(dsn)  # left by killed workers of earlier runs
    log.info("已清理演练库 scratch databases dropped: %s", dropped or "none left")
    return dropped
