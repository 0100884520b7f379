"""时间点恢复 Restore a PostgreSQL server to a point in time, on demand, into a NEW cluster.

From the server's pgBackRest repository, never over production:

1. :func:`authorize_pitr_restore` — the form (target ``latest``, a time with its zone, or a named
   restore point), the server id typed into 'confirm' exactly, the triggering user 系统管理员 or
   higher, and the backup set: by default the newest *verified* physical backup that finished
   before the target and whose files the repository still has (:mod:`hisops.backup.trust`); an
   explicit backup id may also be ``completed``. Refusals are audited and raised as
   :class:`~hisops.restore.errors.Refused`.
2. :func:`run_pitr_restore` — ``pgbackrest restore`` into a new data directory
   ``<restore root>/hisops_restored_<server>_<yymmddHHMMSS>_<6 hex>`` (the restore root is
   ``pitr.restore_path`` or a ``restores`` folder beside hisops' pgBackRest configuration; never
   the production data directory, refused by a guard), WAL archiving off in the copy (it never
   pushes WAL into production's repository), recovery to the target, started on a free loopback
   port (written into the copy's ``postgresql.auto.conf``, so a restart keeps it there) and
   promoted. Where hisops' heartbeat rows bracket the target, the copy must hold the one before
   and not the one after, or the restore fails. The copy keeps running for ops to check and
   promote (runbook: the DAG's doc); a failed restore stops and removes it.

The restore and the recovery are the PITR drill's (:mod:`hisops.pitr.drill`): one code path.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.restore.errors import RestoreRefused
from hisops.restore.request import RESTORABLE_STATES, XComPlan, backup_id_or, check_role

if TYPE_CHECKING:
    from hisops.catalog.records import BackupRecord
    from hisops.inventory.models import PgServer
    from hisops.pitr.markers import Target
    from hisops.restore.service import RestoreEnv

log = logging.getLogger(__name__)

ACTION = "restore_pitr"
AUTHORIZED_ACTION = "restore_pitr_authorized"
TARGET_KINDS = ("latest", "time", "name")
AUTO = "auto"
COPY_PREFIX = "hisops_restored_"
COPY_RE = re.compile(r"hisops_restored_[a-z0-9_-]{1,40}_[0-9]{12}_[0-9a-f]{6}")
POINT_RE = re.compile(r"[A-Za-z0-9_.:-]{1,63}")
STAMP = "%y%m%d%H%M%S"
#: lines hisops appends to the copy's postgresql.auto.conf (the runbook removes them on promotion)
PINNED_MARK = "# hisops restore_pitr: the copy's own port; remove when promoting"


@dataclass(frozen=True)
class PitrRestoreRequest:
    """What the trigger form asked for, plus who asked."""

    server_id: str
    target_kind: str = "latest"
    target_value: str | None = None
    backup: int | str = AUTO
    confirm: str | None = None
    user: str | None = None
    port: int | None = None  # None: a free port


@dataclass(frozen=True)
class PitrRestorePlan(XComPlan):
    """An authorized point-in-time restore (small, JSON-able for XCom)."""

    server_id: str
    backup_id: int
    label: str
    target_kind: str
    target_value: str | None
    datadir: str
    port: int  # 0: a free port, chosen when the restore starts
    user: str


# --- deciding -------------------------------------------------------------------------------------


def target_time(value: str | None) -> datetime:
    """An ISO time with its zone (``2026-12-01 09:30:00+08:00``); a time without zone is refused:
    a hospital's 09:30 and the server's UTC are 8 hours apart."""
    try:
        when = datetime.fromisoformat(str(value or "").strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise RestoreRefused(
            f"目标时间无效或缺少时区：{value!r}（例 2026-12-01 09:30:00+08:00）",
            f"target time {value!r} must be an ISO time with its zone, "
            "e.g. 2026-12-01 09:30:00+08:00",
        )
    return when


def check_target(kind: str, value: str | None) -> None:
    if kind not in TARGET_KINDS:
        raise RestoreRefused(
            f"未知恢复目标 {kind!r}", f"target must be one of {', '.join(TARGET_KINDS)}"
        )
    if kind == "time":
        target_time(value)
    if kind == "name" and not POINT_RE.fullmatch(value or ""):
        raise RestoreRefused(
            f"还原点名称无效：{value!r}", f"restore point name {value!r} is not a valid name"
        )


def parse_backup(value: Any) -> int | str:
    """``auto`` (also when empty) or a positive backup id."""
    return AUTO if value in (None, "") else backup_id_or(value, AUTO)


def request_from_form(params: dict[str, Any], user: str | None) -> PitrRestoreRequest:
    value = params.get("target_value")
    port = params.get("port")
    return PitrRestoreRequest(
        server_id=params.get("server_id") or "",
        target_kind=params.get("target") or "latest",
        target_value=value if value not in ("", None) else None,
        backup=parse_backup(params.get("backup_id")),
        confirm=params.get("confirm"),
        user=user,
        port=int(port) if port not in (None, "", 0) else None,
    )


def check_request(req: PitrRestoreRequest) -> None:
    """The server id typed exactly (no strip, no case folding), a valid target and port."""
    if (req.confirm or "") != req.server_id:
        raise RestoreRefused(
            f"时间点恢复需要在确认栏输入服务器标识 {req.server_id}",
            f"a point-in-time restore needs the server id {req.server_id!r} typed into 'confirm'",
        )
    check_target(req.target_kind, req.target_value)
    if req.port is not None and not 1024 <= req.port <= 65535:
        raise RestoreRefused(f"端口无效：{req.port}", f"port {req.port} must be 1024–65535")


def _finished(record: BackupRecord) -> datetime | None:
    text = (record.manifest or {}).get("finished_at")
    return datetime.fromisoformat(text) if text else record.finished_at


def choose_physical(
    records: list[BackupRecord], backup: int | str, before: datetime | None, server_id: str
) -> BackupRecord:
    """The backup set to restore: the given id (completed or verified, not deleted), else the
    newest verified physical backup that finished before ``before`` (None: no bound).
    ``records``: the server's backups, newest first."""
    physical = [r for r in records if r.kind == "physical" and r.deleted_at is None]
    if backup != AUTO:
        found = next((r for r in physical if r.id == backup), None)
        if found is None or found.state not in RESTORABLE_STATES:
            state = f"（{found.state}）" if found else ""
            raise RestoreRefused(
                f"备份 #{backup} 不是 {server_id} 的可用物理备份{state}",
                f"backup #{backup} is not a usable physical backup of {server_id}",
            )
        if before is not None and (_finished(found) or before) > before:
            raise RestoreRefused(
                f"备份 #{backup} 结束于目标时间之后", f"backup #{backup} ended after the target"
            )
        return found
    for record in physical:
        finished = _finished(record)
        if record.state == "verified" and (before is None or (finished and finished < before)):
            return record
    bound_zh = "在目标时间之前结束的" if before else ""
    bound_en = " that finished before the target" if before else ""
    raise RestoreRefused(
        f"{server_id} 没有{bound_zh}已校验的物理备份",
        f"{server_id} has no verified physical backup{bound_en}",
    )


def restore_root(server: PgServer) -> Path:
    """Where copies go: ``pitr.restore_path`` if the inventory has one, else ``restores`` beside
    hisops' pgBackRest configuration (reachable by the PostgreSQL OS user)."""
    pitr = server.pitr
    assert pitr is not None
    if pitr.restore_path:
        return Path(pitr.restore_path)
    return Path(pitr.config_path).parent / "restores"


def copy_dir(root: Path, server_id: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP)
    slug = re.sub(r"[^a-z0-9_-]", "_", server_id.lower())[:40] or "server"
    return root / f"{COPY_PREFIX}{slug}_{stamp}_{secrets.token_hex(3)}"


def assert_new_datadir(path: Path, production_datadir: str) -> None:
    """A copy's data directory: named like one, new, neither production's nor inside it."""
    prod = Path(production_datadir).resolve()
    resolved = path.resolve()
    if (
        not COPY_RE.fullmatch(path.name)
        or resolved == prod
        or prod in resolved.parents
        or path.exists()
    ):
        raise RestoreRefused(
            f"拒绝使用该目录作为恢复目标 refusing {path}",
            f"{path} must be a new hisops_restored_* directory outside the production data "
            f"directory {production_datadir}",
        )


# --- the steps ------------------------------------------------------------------------------------


def _server(env: RestoreEnv, server_id: str) -> PgServer:
    _, server = env.inventory.locate_server(server_id)
    if server.pitr is None:
        raise RestoreRefused(
            f"服务器 {server_id} 未配置物理备份（pitr）",
            f"server {server_id} has no pitr block in the inventory",
        )
    return server


def _chosen(env: RestoreEnv, server: PgServer, req: PitrRestoreRequest) -> BackupRecord:
    from hisops.backup import trust

    before = _bound(env, server, req)
    records = env.repo.backups_for(server.id)
    record = choose_physical(records, req.backup, before, server.id)
    kw: dict[str, Any] = {"channels": env.channels, "actor": env.run.actor}
    check = trust.ensure_present(env.repo, record, **kw, **env.run.audit_fields())
    if not check.ok:
        raise RestoreRefused(
            f"备份 #{record.id} 已不在仓库中：{check.summary}",
            f"backup #{record.id} is not in the repository: {check.summary}",
        )
    return record


def _bound(env: RestoreEnv, server: PgServer, req: PitrRestoreRequest) -> datetime | None:
    """The backup set must have finished before this: the target time; for a restore point
    hisops made, the heartbeat written just before it (best effort: production may be down)."""
    if req.target_kind == "time":
        return target_time(req.target_value)
    if req.target_kind != "name":
        return None
    from hisops.pitr import markers

    try:
        found = markers.make_target(env.dsn_for(server), "name", "", req.target_value)
    except Exception:  # noqa: BLE001 - production unreadable: the newest verified set is used
        return None
    return found.before.at if found.before else None


def authorize_pitr_restore(env: RestoreEnv, params: dict[str, Any]) -> dict[str, Any]:
    """Form, typed confirmation, role, backup set; the plan as a dict (refusals audited)."""
    from hisops.restore.service import RolesUnreadable, reason_of, refuse, roles_of_user

    server_id = params.get("server_id") or ""
    try:
        req = request_from_form(params, env.run.triggering_user)
        server = _server(env, server_id)
        check_request(req)  # before asking anyone about roles
        check_role(req.user, roles_of_user(env, req.user))
        record = _chosen(env, server, req)
        datadir = copy_dir(restore_root(server), server.id)
        assert_new_datadir(datadir, server.data_directory)
    except (RestoreRefused, RolesUnreadable, LookupError, ValueError) as exc:
        raise refuse(env, server_id, params, reason_of(exc), ACTION) from exc
    plan = PitrRestorePlan(
        server_id=server.id,
        backup_id=record.id,
        label=str((record.manifest or {}).get("label")),
        target_kind=req.target_kind,
        target_value=req.target_value,
        datadir=str(datadir),
        port=req.port or 0,
        user=env.run.actor,
    )
    log.info(
        "已授权 authorized: %s restores %s to %s %s from backup #%s into %s (port %s)",
        plan.user,
        plan.server_id,
        plan.target_kind,
        plan.target_value or "",
        plan.backup_id,
        plan.datadir,
        plan.port,
    )
    env.audit(AUTHORIZED_ACTION, plan.server_id, "success", plan.as_dict())
    return plan.as_dict()


def _target(plan: PitrRestorePlan, production_dsn: str) -> tuple[Target, list[str]]:
    """Recovery target and, where hisops' heartbeat rows bracket it, the rows that prove it.
    Production is only read (it may be the thing that is broken): unreachable → no proof."""
    from hisops.pitr import markers

    if plan.target_kind == "latest":
        return markers.Target("latest", None, None, None), []
    try:
        drill = f"restore_{plan.backup_id}"
        return markers.make_target(production_dsn, plan.target_kind, drill, plan.target_value), []
    except Exception as exc:  # noqa: BLE001 - production down or read-only: restore anyway
        note = f"生产库不可读，未做心跳证明 production not readable, point not proven: {exc}"
        return markers.Target(plan.target_kind, plan.target_value, None, None), [note[:500]]


def _make_dir(path: Path, os_user: str) -> None:
    import pwd

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(os_user)
        for p in (path.parent, path):
            os.chown(p, pw.pw_uid, pw.pw_gid)


def pin_settings(datadir: Path, port: int) -> None:
    """The copy's own port and loopback address in its postgresql.auto.conf (a restart keeps
    them; pgBackRest already wrote ``archive_mode = 'off'`` there)."""
    conf = datadir / "postgresql.auto.conf"
    with conf.open("a", encoding="utf-8") as fh:
        fh.write(f"\n{PINNED_MARK}\nport = {port}\nlisten_addresses = '127.0.0.1'\n")


def copy_dsn(production_dsn: str, port: int, dbname: str | None = None) -> str:
    """The production credentials, pointed at the copy on loopback."""
    from hisops.targets.postgres import dsn_with

    return dsn_with(production_dsn, dbname, host="127.0.0.1", port=str(port))


def remove_copy(req: Any, datadir: Path) -> None:
    """Stop a copy and remove its data directory (only ``hisops_restored_*`` names)."""
    from hisops.pitr.drill import stop_cluster

    stop_cluster(req, datadir)
    if COPY_RE.fullmatch(datadir.name):
        shutil.rmtree(datadir, ignore_errors=True)


def _prove(target: Target, dsn: str) -> list[str]:
    from hisops.pitr import markers

    if target.before is None and target.after is None:
        if target.kind == "latest":
            return []
        return [
            "目标点附近没有 hisops 心跳记录，请自行核对数据 no hisops heartbeat brackets the "
            "target: check the data at the point yourself"
        ]
    problems = markers.prove(target, markers.heartbeat_ids(dsn))
    if problems:
        from hisops.verify.drill import DrillStop

        raise DrillStop("backup", problems)
    return [
        f"已证明恢复点 point proven: heartbeat #{target.before.id if target.before else '—'} "
        f"present, #{target.after.id if target.after else '—'} absent"
    ]


def restore_copy(
    plan: PitrRestorePlan, server: PgServer, production_dsn: str, pgbr: Any
) -> dict[str, Any]:
    """Restore, pin the port, start, wait for promotion, prove the point; the copy keeps running.
    On any failure the copy is stopped and removed and the exception propagates."""
    from hisops.pitr.drill import PitrDrillRequest, free_port, restore_into, start_and_wait

    datadir, port = Path(plan.datadir), plan.port or free_port()
    assert_new_datadir(datadir, server.data_directory)
    os_user = server.pitr.os_user if server.pitr else "postgres"
    req = PitrDrillRequest(
        backup_id=plan.backup_id,
        server_id=server.id,
        label=plan.label,
        production_dsn=production_dsn,
        production_datadir=server.data_directory,
        pgbr=pgbr,
        scratch_root=datadir.parent,
        evidence_root=datadir.parent,
        pg_bindir=Path(server.pg_bindir) if server.pg_bindir else None,
        os_user=os_user,
    )
    target, notes = _target(plan, production_dsn)
    started = time.monotonic()
    try:
        _make_dir(datadir, os_user)
        restore_into(req, datadir, target)
        pin_settings(datadir, port)
        start_and_wait(req, datadir, port)
        seconds = round(time.monotonic() - started, 3)
        notes += _prove(target, copy_dsn(production_dsn, port))
    except BaseException:
        remove_copy(req, datadir)
        raise
    return {
        "datadir": str(datadir),
        "port": port,
        "host": "127.0.0.1",
        "restore_seconds": seconds,
        "target": target.as_dict(),
        "notes": notes,
    }


def run_pitr_restore(env: RestoreEnv, plan_dict: dict[str, Any]) -> dict[str, Any]:
    """The authorized restore; success and failure audited (the error says what failed)."""
    from hisops.verify.drill import DrillStop

    plan = PitrRestorePlan.from_dict(plan_dict)
    server = _server(env, plan.server_id)
    if env.pgbackrest_for is None:
        raise RuntimeError("没有 pgBackRest 配置 no pgBackRest for the restore")
    try:
        outcome = restore_copy(plan, server, env.dsn_for(server), env.pgbackrest_for(server))
    except Exception as exc:
        lines = exc.failures if isinstance(exc, DrillStop) else [str(exc)]
        error = "; ".join(lines)[:1000]
        env.audit(ACTION, plan.server_id, "failure", {**plan_dict, "error": error})
        raise RuntimeError(f"时间点恢复失败 point-in-time restore failed: {error}") from exc
    details = {**plan_dict, **outcome}
    env.audit(ACTION, plan.server_id, "success", details)
    log.info(
        "时间点恢复完成 restored %s to %s %s: new cluster %s on 127.0.0.1:%s in %.1fs",
        plan.server_id,
        plan.target_kind,
        plan.target_value or "",
        plan.datadir,
        outcome["port"],
        outcome["restore_seconds"],
    )
    return details
