"""RPO checks of the daily inspection (每日巡检): WAL archiving and physical backups per server.

For every PostgreSQL server with a ``pitr:`` block, one job with four findings (target kind
``database``, target id = the server id):

- ``pitr.archive`` — the WAL archiver: ``pg_stat_archiver.failed_count`` and a failure newer than
  the last success (archive_command failing: repository full or unwritable) → critical;
- ``pitr.rpo`` — the age of the oldest WAL not yet archived vs ``pitr.rpo_seconds``: with a backlog,
  the age of the last archived segment (what would be lost if the server died now); no backlog → ok
  however old the last segment is (an idle server writes no WAL);
- ``pitr.stanza`` — ``pgbackrest info`` status of the stanza (when the task can run pgBackRest);
- ``pitr.backup_age`` — the age of the last verified physical backup whose files exist
  (``hisops.backup.trust``) vs the ``backup_age_hours`` thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hisops.inspect.findings import finding

if TYPE_CHECKING:
    from hisops.catalog.records import FindingRecord
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory, PgServer, System

ARCHIVER_SQL = """
SELECT archived_count, failed_count, last_archived_wal, last_archived_time, last_failed_wal,
       last_failed_time,
       pg_walfile_name(pg_current_wal_lsn()) AS current_wal, now() AS now
FROM pg_stat_archiver
"""
SUGG_ARCHIVE = (
    "检查 pgBackRest 仓库是否已满或不可写、archive_command 是否正确（见 pitr_backup 的准备步骤）；"
    "修复前服务器宕机将丢失未归档的数据。",
    "Check whether the pgBackRest repository is full or not writable and archive_command is right "
    "(see pitr_backup's Prepare); until fixed, a crash loses the unarchived data.",
)
SUGG_STANZA = (
    "运行 pitr_backup（准备步骤会创建并检查 stanza），按其提示修复。",
    "Run pitr_backup (Prepare creates and checks the stanza) and fix what it reports.",
)
SUGG_AGE = (
    "检查 pitr_backup 与 backup_verification 的最近运行；物理备份须经时间点恢复演练才算已校验。",
    "Check the latest pitr_backup and backup_verification runs; a physical backup counts as "
    "verified only after its PITR drill passed.",
)


def _archiver(dsn: str) -> dict[str, Any]:
    from hisops.targets.postgres import pg_session

    with pg_session(dsn, target="pitr-inspection") as conn, conn.cursor() as cur:
        cur.execute(ARCHIVER_SQL)
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def archive_findings(server: PgServer, system_id: str, a: dict[str, Any]) -> list[FindingRecord]:
    """pitr.archive and pitr.rpo from one pg_stat_archiver row (pure: unit-tested)."""
    rpo = server.pitr.rpo_seconds
    failing = a["last_failed_time"] is not None and (
        a["last_archived_time"] is None or a["last_failed_time"] > a["last_archived_time"]
    )
    if failing:
        archive = finding(
            "pitr.archive",
            "database",
            server.id,
            system_id,
            "critical",
            a["failed_count"],
            zh=f"WAL 归档失败（{a['failed_count']} 次），最近失败段 {a['last_failed_wal']}",
            en=f"WAL archiving is failing ({a['failed_count']} failures), last failed segment "
            f"{a['last_failed_wal']}",
            sugg_zh=SUGG_ARCHIVE[0],
            sugg_en=SUGG_ARCHIVE[1],
            last_failed_wal=a["last_failed_wal"],
        )
    else:
        archive = finding(
            "pitr.archive",
            "database",
            server.id,
            system_id,
            "ok",
            a["failed_count"],
            zh=f"WAL 归档正常，最近归档段 {a['last_archived_wal']}",
            en=f"WAL archiving works, last archived segment {a['last_archived_wal']}",
        )
    last = (a["last_archived_wal"] or "")[:24]
    backlog = not last or last < _previous_segment(a["current_wal"])
    age = (a["now"] - a["last_archived_time"]).total_seconds() if a["last_archived_time"] else None
    threshold = f"RPO {rpo} s"
    if not backlog:
        rpo_finding = finding(
            "pitr.rpo",
            "database",
            server.id,
            system_id,
            "ok",
            0,
            threshold,
            zh="无待归档的 WAL，RPO 满足",
            en="no WAL waiting to be archived: RPO met",
            unit=" s",
        )
    else:
        seconds = age if age is not None else float("inf")
        severity = "ok" if seconds <= rpo else ("warn" if seconds <= 2 * rpo else "critical")
        shown = "从未归档 never" if age is None else f"{seconds:.0f} s"
        rpo_finding = finding(
            "pitr.rpo",
            "database",
            server.id,
            system_id,
            severity,
            None if age is None else round(seconds),
            threshold,
            zh=f"有待归档的 WAL，最近一次成功归档距今 {shown}（RPO 目标 {rpo} s）",
            en=f"WAL is waiting to be archived; last successful archive {shown} ago "
            f"(RPO target {rpo} s)",
            sugg_zh=SUGG_ARCHIVE[0],
            sugg_en=SUGG_ARCHIVE[1],
            unit=" s",
        )
    return [archive, rpo_finding]


def _previous_segment(segment: str) -> str:
    """The WAL segment before ``segment`` (timeline kept; 256
    segments per log id with 16 MB WAL)."""
    timeline, log_id, seg = segment[:8], int(segment[8:16], 16), int(segment[16:24], 16)
    if seg == 0:
        log_id, seg = log_id - 1, 0xFF
    else:
        seg -= 1
    return f"{timeline}{log_id:08X}{seg:08X}"


def stanza_finding(server: PgServer, system_id: str, pgbr: Any) -> FindingRecord:
    info = pgbr.info()
    if info.status_code == 0:
        return finding(
            "pitr.stanza",
            "database",
            server.id,
            system_id,
            "ok",
            zh=f"stanza {server.pitr.stanza} 正常",
            en=f"stanza {server.pitr.stanza} ok",
        )
    return finding(
        "pitr.stanza",
        "database",
        server.id,
        system_id,
        "critical",
        info.status_code,
        zh=f"stanza {server.pitr.stanza} 异常：{info.status_message}",
        en=f"stanza {server.pitr.stanza} not ok: {info.status_message}",
        sugg_zh=SUGG_STANZA[0],
        sugg_en=SUGG_STANZA[1],
    )


def backup_age_finding(
    repo: CatalogRepository, inventory: Inventory, server: PgServer, system_id: str, now: datetime
) -> FindingRecord:
    from hisops.backup.trust import last_restorable
    from hisops.inspect.findings import classify

    level = inventory.thresholds_for(None).backup_age_hours
    last = last_restorable(
        repo, inventory, server.id, kinds=("physical",), actor="daily_inspection"
    )
    if last is None:
        return finding(
            "pitr.backup_age",
            "database",
            server.id,
            system_id,
            "critical",
            None,
            level,
            unit=" h",
            value_text="none",
            zh="没有已校验（演练通过）的物理备份",
            en="no verified (drilled) physical backup",
            sugg_zh=SUGG_AGE[0],
            sugg_en=SUGG_AGE[1],
        )
    hours = (now - (last.finished_at or last.started_at)).total_seconds() / 3600
    return finding(
        "pitr.backup_age",
        "database",
        server.id,
        system_id,
        classify(level, hours),
        round(hours, 1),
        level,
        unit=" h",
        zh=f"最近已校验物理备份 #{last.id} 距今 {hours:.1f} 小时",
        en=f"last verified physical backup #{last.id} is {hours:.1f} h old",
        sugg_zh=SUGG_AGE[0],
        sugg_en=SUGG_AGE[1],
        backup_id=last.id,
    )


def inspect_server(
    server: PgServer,
    system_id: str,
    dsn: str,
    repo: CatalogRepository | None,
    inventory: Inventory,
    pgbr: Any = None,
    now: datetime | None = None,
) -> list[FindingRecord]:
    """Every RPO finding of one server; a check that cannot run is a check_error, never a crash."""
    from hisops.inspect.findings import check_error

    out: list[FindingRecord] = []
    try:
        out += archive_findings(server, system_id, _archiver(dsn))
    except Exception as exc:  # noqa: BLE001 - unreachable server: a finding, not a crashed run
        out.append(check_error("pitr.archive", "database", server.id, system_id, exc))
    if pgbr is not None:
        try:
            out.append(stanza_finding(server, system_id, pgbr))
        except Exception as exc:  # noqa: BLE001
            out.append(check_error("pitr.stanza", "database", server.id, system_id, exc))
    if repo is not None:
        try:
            out.append(
                backup_age_finding(repo, inventory, server, system_id, now or datetime.now(UTC))
            )
        except Exception as exc:  # noqa: BLE001
            out.append(check_error("pitr.backup_age", "database", server.id, system_id, exc))
    return out


def jobs(
    inventory: Inventory,
    system: System,
    repo: CatalogRepository | None,
    access: Any,
    job_type: Callable[..., Any],
) -> list[Any]:
    """One inspection job per server of ``system`` with a ``pitr:``
    block (``job_type``: run.Job)."""
    out = []
    for _, server in inventory.all_servers():
        if server.pitr is None or not _same(server, system):
            continue
        factory = getattr(access, "pgbackrest_for", None)

        def call(server: Any = server, factory: Any = factory) -> tuple[list[Any], dict]:
            try:
                dsn = access.dsn_for(server)
            except Exception as exc:  # noqa: BLE001 - missing connection
                from hisops.inspect.findings import check_error

                return [check_error("pitr.archive", "database", server.id, system.id, exc)], {}
            pgbr = _maybe(factory, server)
            return inspect_server(server, system.id, dsn, repo, inventory, pgbr), {}

        out.append(job_type("database", server.id, system.id, call))
    return out


def _same(server: Any, system: Any) -> bool:
    return any(s.id == server.id for s in system.servers)


def _maybe(factory: Any, server: Any) -> Any:
    if factory is None:
        return None
    try:
        return factory(server)
    except Exception:  # noqa: BLE001 - without pgBackRest access the stanza check is skipped
        return None
