"""Task bodies of backup_verification (恢复演练) and restore_database (数据恢复); the DAG files only wire them.

Import-cheap: DAG files import this module at parse time. GX, psycopg2, SQLAlchemy and the domain
modules are imported inside the functions.

Who triggered a run: ``context["dag_run"].triggering_user_name`` (Airflow ≥ 3.1 stores the
authenticated user of the UI/REST trigger on the DAG run; the CLI stores the OS user, dag.test()
"dag_test", scheduled and asset-triggered runs None). Roles of that user: see :func:`user_roles`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hisops.airflow import runtime

log = logging.getLogger(__name__)

CHECK_ID = "backup.verification"
DRILL_CONN_ID = "hisops_drill"  # optional: a separate server for scratch databases
AIRFLOW_DB_CONN_ID = "hisops_airflow_db"  # read access to FAB's ab_user / ab_role / ab_user_role
VERIFY_ACTION, RESTORE_ACTION = "backup_verification", "restore"
MAX_LINES = 40  # failures / failed checks kept in XCom and the catalog (the evidence has them all)


# --- parse time ---------------------------------------------------------------------------------


def verification_schedule(inventory: Any) -> Any:
    """AssetAny over every inventory database's backup asset (None when there is none).

    By *name reference* (``Asset.ref(name=…)``, resolved by the scheduler): the name equals the asset
    db_backup emits (``backup_tasks.backup_asset`` — name = URI ``hisops://backup/<id>``). Building
    ``Asset(uri)`` here would make the parser load every provider's URI handlers (and SQLAlchemy's ORM)."""
    from airflow.sdk import Asset, AssetAny

    from hisops.backup.manifest import asset_uri
    from hisops.pitr.schedule import asset_uri as pitr_asset_uri

    refs = [Asset.ref(name=asset_uri(db.id)) for _, db in inventory.all_databases()]
    refs += [
        Asset.ref(name=pitr_asset_uri(srv.id)) for _, srv in inventory.all_servers() if srv.pitr
    ]
    return AssetAny(*refs) if refs else None


# --- shared -------------------------------------------------------------------------------------


def _actor(context: dict) -> str:
    from hisops.airflow.backup_tasks import actor

    return actor(context)


def _label(context: dict, label: str) -> None:
    from hisops.airflow.backup_tasks import set_label

    set_label(context, label)


def _database(database_id: str) -> tuple[Any, Any]:
    inv = runtime.inventory()
    system, db = next(((s, d) for s, d in inv.all_databases() if d.id == database_id), (None, None))
    if db is None:
        raise ValueError(f"清单中没有数据库 database {database_id!r} is not in the inventory")
    return system, db


def _connection_exists(conn_id: str) -> bool:
    from hisops.airflow.connections import get_connection

    try:
        get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and friends: Airflow stays a lazy import
        return False


def drill_server_dsn(db: Any) -> str:
    """Where scratch databases live: connection ``hisops_drill`` if defined, else the database's own server."""
    from hisops.airflow.connections import postgres_dsn

    if _connection_exists(DRILL_CONN_ID):
        return postgres_dsn(DRILL_CONN_ID, "postgres")
    return runtime.dsn_for(db)


def _audit(context: dict, action: str, target: str, result: str, details: dict[str, Any]) -> None:
    runtime.catalog().add_audit_event(
        actor=_actor(context),
        action=action,
        target=target,
        result=result,
        details=details,
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
    )


def _channels() -> list[Any]:
    from hisops.airflow.notify_glue import channels_from_inventory

    return channels_from_inventory(runtime.inventory().notifications, strict=False)


# --- backup_verification: which backups -----------------------------------------------------------


def _event_backup_ids(context: dict) -> list[int]:
    run = context.get("dag_run")
    ids = []
    for event in getattr(run, "consumed_asset_events", None) or []:
        value = (event.extra or {}).get("backup_id")
        kind = (event.extra or {}).get("kind", "database")
        if isinstance(value, int) and value not in ids and kind in ("database", "physical"):
            ids.append(value)
    return ids


def _pending_backup_ids() -> list[int]:
    """Every not-yet-drilled (state ``completed``) backup of every inventory database, oldest first.

    What an asset-triggered run drills: Airflow 3.3 attaches no ``consumed_asset_events`` to runs of a
    DAG scheduled by asset *name reference*, so the catalog says what is new. ALL undrilled backups are
    drilled (two backups in quick succession, safety backups of restore_database), never only the
    newest. A backup whose drill could not be performed (infrastructure/configuration) stays
    ``completed`` and is drilled again."""
    repo, ids, inv = runtime.catalog(), [], runtime.inventory()
    for _, db in inv.all_databases():
        found = [b for b in repo.backups_for(db.id, states=("completed",)) if b.kind == "database"]
        ids += [b.id for b in reversed(found)]
    for _, srv in inv.all_servers():
        if (
            srv.pitr
        ):  # physical backups: only the newest is drilled (each one restores the whole server)
            found = [
                b for b in repo.backups_for(srv.id, states=("completed",)) if b.kind == "physical"
            ]
            ids += [b.id for b in found[:1]]
    return ids


def _job(record: Any, context: dict) -> dict[str, Any]:
    from hisops.verify.scratch import scratch_name

    if record.kind == "physical":
        system, srv = runtime.inventory().locate_server(record.database_id)
        return {
            "backup_id": record.id,
            "database_id": srv.id,
            "system_id": system.id,
            "kind": "physical",
            "label": (record.manifest or {}).get("label"),
            "scratch_db": "",
            "mode": (context.get("params") or {}).get("mode") or "fast",
            "pitr_target": (context.get("params") or {}).get("pitr_target") or "auto",
        }
    system, db = _database(record.database_id)
    return {
        "backup_id": record.id,
        "database_id": db.id,
        "system_id": system.id,
        "backup_dir": record.path,
        "manifest_sha256": record.manifest_sha256,
        "scratch_db": scratch_name(db.id, record.id),
        "mode": (context.get("params") or {}).get("mode") or "fast",
    }


def _usable(record: Any, backup_id: int) -> str | None:
    """Why a backup cannot be drilled (None = it can)."""
    if record is None:
        return f"备份 #{backup_id} 不存在 backup #{backup_id} does not exist"
    if record.kind == "files":
        return f"备份 #{backup_id} 是文件备份 is a file backup (its checksums are checked by file_backup)"
    if record.state not in ("completed", "verified"):
        return f"备份 #{backup_id} 状态为 is {record.state}; only completed or verified backups are drilled"
    if record.deleted_at is not None:
        return (
            f"备份 #{backup_id} 已被保留策略删除 was deleted by retention ({record.deleted_reason})"
        )
    inv = runtime.inventory()
    known = {d.id for _, d in inv.all_databases()} | {v.id for _, v in inv.all_servers() if v.pitr}
    if record.database_id not in known:
        return f"备份 #{backup_id} 的数据库 {record.database_id} 已不在清单中 is no longer in the inventory"
    return None


def _vanished(repo: Any, record: Any, context: dict) -> str | None:
    """Storage check before drilling: files gone → ``missing`` + incident + notification (the run
    must not end green: the drill of this job reports it)."""
    from hisops.backup import trust

    check = trust.ensure_present(
        repo,
        record,
        channels=_channels(),
        actor=_actor(context),
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
    )
    return None if check.ok else f"{check.verdict}: {check.summary}"


def plan_drills(backup_id: int | None, context: dict) -> list[dict[str, Any]]:
    """The backups to drill: the form's backup_id, else those of the triggering asset events (when Airflow
    attaches them), else every database's newest backup not drilled yet. Each gets its scratch database
    name now (the teardown needs it)."""
    from hisops.airflow.shared_storage import backup_root

    backup_root(runtime.inventory(), "backup_verification")  # this worker sees the shared backups?
    explicit = backup_id is not None
    ids = [int(backup_id)] if explicit else (_event_backup_ids(context) or _pending_backup_ids())
    repo, jobs = runtime.catalog(), []
    for ident in ids:
        record = repo.get_backup(ident)
        reason = _usable(record, ident)
        if reason and explicit:
            raise ValueError(reason)
        if reason:
            log.warning("跳过 skipped: %s", reason)
            continue
        vanished = _vanished(repo, record, context)
        jobs.append({**_job(record, context), **({"vanished": vanished} if vanished else {})})
    log.info(
        "恢复演练 drills planned: %s",
        [(j["database_id"], j["backup_id"], j["scratch_db"]) for j in jobs],
    )
    return jobs


# --- backup_verification: the drill -------------------------------------------------------------


def _encryption_key(backup_dir: Path) -> str | None:
    from hisops.airflow.connections import get_connection
    from hisops.backup.manifest import ManifestError, load_manifest

    try:
        encryption = load_manifest(backup_dir).encryption
    except ManifestError:
        return None  # the drill reports the unreadable manifest as the backup's fault
    if encryption is None:
        return None
    try:
        return get_connection(encryption.key_conn_id).password or None
    except Exception:  # noqa: BLE001 - reported by the drill as a configuration fault (no key)
        log.warning("加密连接不可用 encryption connection %r not usable", encryption.key_conn_id)
        return None


def drill_request(job: dict[str, Any], *, before_checks: Any = None) -> Any:
    from hisops.airflow.shared_storage import backup_root, reports_root
    from hisops.verify.drill import DrillRequest

    inv = runtime.inventory()
    backup_root(inv, "backup_verification")
    _, db = _database(job["database_id"])
    backup_dir = Path(job["backup_dir"])
    return DrillRequest(
        backup_id=job["backup_id"],
        database_id=db.id,
        backup_dir=backup_dir,
        server_dsn=drill_server_dsn(db),
        evidence_root=reports_root(inv, "backup_verification") / "verification",
        scratch_name=job["scratch_db"],
        database=db,
        jobs=db.backup.jobs,
        mode=job.get("mode", "fast"),
        pg_bindir=db.pg_bindir,
        encryption_key=_encryption_key(backup_dir),
        expected_manifest_sha256=job.get("manifest_sha256"),
        before_checks=before_checks,
    )


#: tests set this to a callable(dsn) to tamper with the restored copy before the checks run
BEFORE_CHECKS_HOOK: Any = None


def _trim(result: dict[str, Any]) -> dict[str, Any]:
    return {
        **result,
        "failures": result["failures"][:MAX_LINES],
        "failed_checks": result["failed_checks"][:MAX_LINES],
    }


def _pitr_target(choice: str) -> tuple[str, str | None]:
    """The form's pitr_target: auto (a restore point hisops makes now), latest, time:<ISO>, name:<point>."""
    if choice in ("auto", ""):
        return "name", None
    if choice == "latest":
        return "latest", None
    kind, _, value = choice.partition(":")
    if kind in ("time", "name") and value.strip():
        return kind, value.strip()
    raise ValueError(
        f"pitr_target must be auto, latest, time:<ISO time> or name:<restore point>, not {choice!r}"
    )


def pitr_scratch_root(srv: Any) -> Path:
    """Where PITR drills restore (must be reachable by the PostgreSQL OS user): pitr.scratch_path,
    else a ``scratch`` folder beside the hisops-written pgBackRest config."""
    return (
        Path(srv.pitr.scratch_path)
        if srv.pitr.scratch_path
        else Path(srv.pitr.config_path).parent / "scratch"
    )


def pitr_drill_request(job: dict[str, Any]) -> Any:
    from hisops.pitr.drill import PitrDrillRequest

    inv = runtime.inventory()
    _, srv = inv.locate_server(job["database_id"])
    kind, value = _pitr_target(job.get("pitr_target") or "auto")
    from psycopg2.extensions import parse_dsn

    dbs = tuple(
        (db, parse_dsn(runtime.dsn_for(db)).get("dbname", db.id))
        for _, db in inv.all_databases()
        if db.server == srv.id
    )
    return PitrDrillRequest(
        backup_id=job["backup_id"],
        server_id=srv.id,
        label=job["label"],
        production_dsn=runtime.dsn_for(srv),
        production_datadir=srv.data_directory,
        pgbr=runtime.pgbackrest_for(srv),
        scratch_root=pitr_scratch_root(srv),
        evidence_root=inv.resolve_path(inv.reports.path) / "verification",
        databases=dbs,
        target_kind=kind,
        target_value=value,
        pg_bindir=srv.pg_bindir,
        mode=job.get("mode", "fast"),
        os_user=srv.pitr.os_user,
    )


def run_drill_task(job: dict[str, Any], context: dict) -> dict[str, Any]:
    from hisops.pitr.drill import run_pitr_drill
    from hisops.verify.drill import run_drill

    _label(context, job["database_id"])
    if job.get(
        "vanished"
    ):  # recorded at planning (missing, incident, notification): report, do not drill
        log.error("备份文件已不在 backup files are not there: %s", job["vanished"])
        return {
            "backup_id": job["backup_id"],
            "database_id": job["database_id"],
            "ok": False,
            "fault": "missing",
            "failures": [job["vanished"]],
            "system_id": job["system_id"],
        }
    if job.get("kind") == "physical":
        result = run_pitr_drill(pitr_drill_request(job))
    else:
        result = run_drill(drill_request(job, before_checks=BEFORE_CHECKS_HOOK))
    for line in result.failures[:MAX_LINES]:
        log.error("演练发现 drill found: %s", line)
    return {**_trim(result.as_dict()), "system_id": job["system_id"]}


# --- backup_verification: recording --------------------------------------------------------------


def _finding(result: dict[str, Any], still_failed: tuple[int, ...] = ()) -> Any:
    from hisops.catalog.records import FindingRecord

    db, ident = result["database_id"], result["backup_id"]
    if result["ok"]:
        failed = ", ".join(f"#{b}" for b in still_failed) if still_failed else ""
        zh = f"备份 #{ident} 恢复演练通过" + (f"；备份 {failed} 仍为失败" if failed else "")
        en = f"restore drill of backup #{ident} passed" + (
            f"; backups {failed} stay failed" if failed else ""
        )
        return FindingRecord(
            CHECK_ID,
            "database",
            db,
            "ok",
            zh,
            en,
            system_id=result.get("system_id"),
            details={"backup_id": ident, "still_failed": list(still_failed)},
        )
    first = (result["failures"] or [result["fault"]])[0]
    severity = "critical" if result["fault"] == "backup" else "check_error"
    return FindingRecord(
        CHECK_ID,
        "database",
        db,
        severity,
        f"备份 #{ident} 恢复演练失败：{first}"[:500],
        f"restore drill of backup #{ident} failed ({result['fault']}): {first}"[:500],
        system_id=result.get("system_id"),
        value_text=result["fault"],
        suggestion_zh="查看演练证据页与任务日志；备份本身有问题时尽快重新备份。",
        suggestion_en="Open the drill's evidence page and task log; if the backup itself is bad, take a new one.",
        details={
            "backup_id": ident,
            "evidence_path": result.get("evidence_path"),
            "failures": result["failures"][:10],
        },
    )


def _mark(repo: Any, result: dict[str, Any]) -> str:
    """Catalog state of the backup: verified, failed (its fault), or unchanged (we could not drill)."""
    from hisops.catalog.repository import BackupStateError

    try:
        if result["ok"]:
            repo.mark_backup_verified(result["backup_id"])
            return "verified"
        if result["fault"] == "backup":
            repo.mark_backup_verification_failed(
                result["backup_id"], (result["error"] or "")[:2000]
            )
            return "failed"
    except BackupStateError as exc:  # e.g. retention deleted it meanwhile: record, do not crash
        log.warning("%s", exc)
        return "unchanged"
    return "unchanged"


def _notify_failure(result: dict[str, Any], incident: Any) -> dict[str, Any]:
    from hisops.notify import send

    ident, db = result["backup_id"], result["database_id"]
    title = f"恢复演练失败 Restore drill FAILED · {db} · 备份 backup #{ident}"
    lines = [
        f"数据库 database: {db}; 备份 backup #{ident}; 原因类别 fault: {result['fault']}",
        *[f"- {line}" for line in result["failures"][:10]],
        f"证据 evidence: {result.get('evidence_path')}",
        f"事件 incident: #{incident.incident.id if incident else '—'}",
        "该备份不会被计为“最近已校验备份”。This backup never counts as the last verified backup.",
    ]
    severity = "critical" if result["fault"] == "backup" else "warn"
    sent = send(_channels(), title, "\n".join(lines), severity=severity)
    if (
        runtime.inventory().notifications and not sent.sent
    ):  # not raised: a retry would re-record the drill
        log.error(
            "演练失败告警未送达任何主管 the drill-failure alert reached no supervisor: %s",
            sent.failed,
        )
    return {"sent": sent.sent, "failed": sent.failed}


def record_drill(result: dict[str, Any], context: dict) -> dict[str, Any]:
    """Catalog: verification row (evidence, RTO), backup state, incident; supervisors told on failure."""
    from datetime import datetime

    _label(context, result["database_id"])
    repo = runtime.catalog()
    if result["fault"] == "missing":  # already recorded by the storage check at planning
        return {
            "backup_id": result["backup_id"],
            "database_id": result["database_id"],
            "ok": False,
            "fault": "missing",
            "verification_id": None,
            "backup_state": "missing",
            "incident": None,
            "notified": {},
            "summary": result["failures"][0],
        }
    details = {
        k: result[k]
        for k in (
            "mode",
            "fault",
            "checks_total",
            "checks_failed",
            "failed_checks",
            "amcheck",
            "timings",
            "notes",
            "scratch_db",
            "failures",
        )
    }
    verification_id = repo.add_verification(
        result["backup_id"],
        result["ok"],
        started_at=datetime.fromisoformat(result["started_at"]),
        finished_at=datetime.fromisoformat(result["finished_at"]),
        restore_seconds=result["restore_seconds"],
        evidence_path=result["evidence_path"],
        details=details,
        error=result["error"],
    )
    state = _mark(repo, result)
    failed = tuple(
        b.id
        for b in repo.backups_for(result["database_id"], states=("failed",))
        if b.kind == "database"
    )
    incident = repo.upsert_incident_for(_finding(result, failed), None)
    notified = {} if result["ok"] else _notify_failure(result, incident)
    _audit(
        context,
        VERIFY_ACTION,
        result["database_id"],
        "success" if result["ok"] else "failure",
        {
            "backup_id": result["backup_id"],
            "verification_id": verification_id,
            "backup_state": state,
            "evidence_path": result["evidence_path"],
            "restore_seconds": result["restore_seconds"],
        },
    )
    return {
        "backup_id": result["backup_id"],
        "database_id": result["database_id"],
        "ok": result["ok"],
        "fault": result["fault"],
        "verification_id": verification_id,
        "backup_state": state,
        "incident": incident.action if incident else None,
        "notified": notified,
        "summary": (result["failures"] or ["ok"])[0],
    }


def drop_scratch(jobs: list[dict[str, Any]]) -> list[str]:
    """Teardown: drop every planned scratch database that still exists (guarded by its name pattern)."""
    from hisops.verify.scratch import drop_database, drop_stale

    dropped, servers = [], {}
    from hisops.pitr.drill import remove_stale

    for _, srv in runtime.inventory().all_servers():
        if srv.pitr:
            dropped += remove_stale(pitr_scratch_root(srv))
    for job in jobs or []:
        if job.get("kind") == "physical":
            continue  # the PITR drill stops and removes its scratch cluster itself
        _, db = _database(job["database_id"])
        dsn = servers.setdefault(db.id, drill_server_dsn(db))
        if drop_database(dsn, job["scratch_db"]):
            dropped.append(job["scratch_db"])
    for dsn in set(servers.values()):
        dropped += drop_stale(dsn)  # left by killed workers of earlier runs
    log.info("已清理演练库 scratch databases dropped: %s", dropped or "none left")
    return dropped


def verification_verdict(records: list[dict[str, Any]]) -> str:
    failed = [r for r in records if not r["ok"]]
    if failed:
        raise RuntimeError(
            "恢复演练未通过 restore drill failed: "
            + "; ".join(
                f"{r['database_id']} #{r['backup_id']} ({r['fault']}): {r['summary']}"
                for r in failed
            )[:3000]
        )
    if not records:
        return "没有需要演练的备份 no backup to drill"
    return "; ".join(f"{r['database_id']} #{r['backup_id']} 已校验 verified" for r in records)
