"""One system's daily inspection (第七条): every database, host and endpoint of the system.

The work of one system runs in a bounded thread pool (targets are I/O bound: SQL round trips,
SSH commands, HTTP); the catalog is read before (facts: last verified backup, previous database
size and filesystem usage) and written after (findings, metrics, log offsets, incidents) from
the calling thread — only the remembered log offsets are looked up lazily, per file, while a host
is scanned (its globs expand on the host). An unreachable target or a failing check is a
finding; only a catalog failure raises (that is an infrastructure failure the caller should see).

Pure domain: no Airflow. The caller passes how targets are reached (:class:`Access`) and the
catalog repository.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hisops.catalog.records import FindingRecord, IncidentChange, MetricSample

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Database, Endpoint, Host, Inventory, System

log = logging.getLogger(__name__)

MAX_WORKERS = 8
SIZE_METRIC = "database_size_bytes"
FS_USED_METRIC = "fs_used_bytes"
FS_FREE_METRIC = "fs_free_bytes"
STARTED_METRIC = "server_started_epoch"
INSPECTION_CHECK_PREFIXES = ("db.", "host.", "log.", "http.", "database.", "endpoint.")
REMOVED_ZH = "目标已从清单中移除，事件关闭"
REMOVED_EN = "target removed from the inventory; incident closed"
# Findings that say the target could not be inspected at all (endpoints: http.status plays
# that role).
BLOCKING_CHECKS = frozenset(
    {"database.reachable", "host.reachable", "endpoint.reachable", "http.status"}
)
SIZE_LOOKBACK = timedelta(days=40)
NOTIFY_ACTIONS = ("opened", "escalated")
REPORT_ACTIONS = ("opened", "escalated", "resolved")

Offsets = dict[str, tuple[int | None, int]]


@dataclass(frozen=True)
class Access:
    """How targets are reached; the Airflow glue resolves connections, tests pass their own."""

    dsn_for: Callable[[Any], str]
    runner_for: Callable[[Any], Any]
    pgbackrest_for: Callable[[Any], Any] | None = None  # pitr servers: stanza check (optional)


@dataclass(frozen=True)
class RunContext:
    """The inspection run the findings belong to.

    ``historical``: the run is for a date well before now (backfill, late run) — live checks see
    the present, not the inspected day, so its findings are marked ``present_state``.
    ``fold_incidents``: False for backfills — a batch of past dates must not replay the present
    into the incidents (a late scheduled run still folds: it is the newest look at the targets).
    """

    inspection_run_id: int
    historical: bool = False
    fold_incidents: bool = True
    now: datetime | None = None  # the engine's "now" (None: the real clock)
    #: False for backfills: reading a log for a past day must not move where the next run starts
    advance_offsets: bool = True


@dataclass
class Job:
    kind: str
    target_id: str
    system_id: str
    call: Callable[[], tuple[list[FindingRecord], Offsets]]


@dataclass
class TargetResult:
    kind: str
    target_id: str
    findings: list[FindingRecord]
    offsets: Offsets = field(default_factory=dict)
    seconds: float = 0.0
    crashed: bool = False


@dataclass
class SystemOutcome:
    """Small, JSON-able summary of one system's inspection (passed between Airflow tasks)."""

    system_id: str
    targets: int
    counts: dict[str, int]
    seconds: float
    changes: list[dict[str, Any]]
    updated: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # "kind:id" → seconds

    def slowest(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(((k, round(v, 3)) for k, v in self.timings.items()), key=lambda kv: -kv[1])[
            :n
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "system_id": self.system_id,
            "targets": self.targets,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "changes": self.changes,
            "updated": self.updated,
            "slowest": self.slowest(),
        }


# --------------------------------------------------------------------------- entry point


def inspect_system(
    inventory: Inventory,
    system: System,
    repo: CatalogRepository,
    run: RunContext,
    access: Access,
    *,
    max_workers: int = MAX_WORKERS,
    progress: Callable[[str], None] | None = None,
) -> SystemOutcome:
    """Inspect every target of ``system`` and record the outcome in the catalog."""
    started = time.monotonic()
    jobs = plan(inventory, system, repo, access, run)
    results = run_jobs(jobs, max_workers, progress or log.info)
    changes = record(system.id, results, repo, run, known=known_targets(inventory))
    findings = [f for r in results for f in r.findings]
    counts = dict(Counter(f.severity for f in findings))
    return SystemOutcome(
        system_id=system.id,
        targets=len(jobs),
        counts=counts,
        seconds=time.monotonic() - started,
        changes=[change_note(c) for c in changes if c.action in REPORT_ACTIONS],
        updated=sum(1 for c in changes if c.action == "updated"),
        timings={f"{r.kind}:{r.target_id}": r.seconds for r in results},
    )


# ------------------------------------------------------------------- planning (catalog reads)


def plan(
    inventory: Inventory, system: System, repo: CatalogRepository, access: Access, run: RunContext
) -> list[Job]:
    """One job per target; catalog facts are looked up here, in the calling thread."""
    jobs = [_database_job(inventory, system, db, repo, access, run) for db in system.databases]
    jobs += [_host_job(inventory, system, host, repo, access, run) for host in system.hosts]
    jobs += [_endpoint_job(inventory, system, ep) for ep in system.endpoints]
    from hisops.inspect import pitr_checks  # RPO: WAL archive, stanza, physical backups (issue 8)

    return jobs + pitr_checks.jobs(inventory, system, repo, access, Job)


def catalog_facts(
    repo: CatalogRepository,
    database_id: str,
    now: datetime | None = None,
    inventory: Inventory | None = None,
    *,
    database: Database | None = None,
    inspection_run_id: int | None = None,
) -> dict[str, Any]:
    """What the database checks need from history (metric samples of earlier runs): last
    verified backup, previous size, previous server start, free space where the data lives.

    With the inventory, "last verified" is the newest verified backup whose files are really there
    (``hisops.backup.trust``; vanished ones become ``missing`` with their own incident)."""
    if inventory is not None:
        from hisops.backup.trust import last_restorable

        backup = last_restorable(repo, inventory, database_id, actor="daily_inspection")
    else:
        backup = repo.latest_verified_backup(database_id)
    since = (now or datetime.now().astimezone()) - SIZE_LOOKBACK
    previous = _last_sample(repo, database_id, SIZE_METRIC, since, inspection_run_id)
    started = _last_sample(repo, database_id, STARTED_METRIC, since, inspection_run_id)
    facts = {
        "last_verified_backup_at": backup.finished_at if backup else None,
        "previous_size_bytes": previous.value if previous else None,
        "previous_size_at": previous.observed_at if previous else None,
        "previous_started_at": datetime.fromtimestamp(started.value, UTC) if started else None,
    }
    place = data_place(inventory, database)
    if place:
        free = _last_sample(repo, place[0], f"{FS_FREE_METRIC}:{place[1]}", since, None)
        facts["disk_free_bytes"] = free.value if free else None
        facts["disk_free_at"] = free.observed_at if free else None
    return facts


def data_place(inventory: Inventory, database: Database) -> tuple[str, str] | None:
    """(host id, disk path) where the database's files live, when the inventory says so."""
    host_id = getattr(database, "host", None)
    if inventory is None or not host_id:
        return None
    host = inventory.find_host(host_id)
    path = database.data_path or (host.disk_paths[0] if host.disk_paths else None)
    return (host_id, path) if path else None


def _last_sample(
    repo: CatalogRepository, target_id: str, metric: str, since: datetime, exclude_run: int | None
) -> Any:
    """The newest sample not taken by the run itself (a retried task must compare with before)."""
    series = [
        s
        for s in repo.metric_series(target_id, metric, since=since)
        if exclude_run is None or s.inspection_run_id != exclude_run
    ]
    return series[-1] if series else None


def reader_offsets(
    repo: CatalogRepository, host: Host, run: RunContext
) -> Callable[[str], Offsets]:
    """Remembered (inode, offset) per log file of ``host`` as read by ``reader`` (the machine
    the host script ran on), looked up once the script named it; a retried run sees the
    offsets from before its first attempt."""
    return lambda reader: repo.log_offsets(host.id, reader, run.inspection_run_id)


def fs_previous(
    repo: CatalogRepository,
    host: Host,
    now: datetime | None = None,
    inspection_run_id: int | None = None,
) -> dict[str, tuple[datetime, float]]:
    """Previous (observed_at, used bytes) per disk path of ``host``, for days-until-full."""
    since = (now or datetime.now().astimezone()) - SIZE_LOOKBACK
    out = {}
    for path in host.disk_paths:
        sample = _last_sample(repo, host.id, f"{FS_USED_METRIC}:{path}", since, inspection_run_id)
        if sample:
            out[path] = (sample.observed_at, sample.value)
    return out


def _database_job(
    inventory: Inventory,
    system: System,
    db: Database,
    repo: CatalogRepository,
    access: Access,
    run: RunContext,
) -> Job:
    from hisops.inspect import engine

    facts = catalog_facts(
        repo,
        db.id,
        run.now,
        inventory=inventory,
        database=db,
        inspection_run_id=run.inspection_run_id,
    )
    thresholds = inventory.thresholds_for(db)

    def call() -> tuple[list[FindingRecord], Offsets]:
        try:
            dsn = access.dsn_for(db)
        except Exception as exc:  # missing / malformed connection: the target cannot be reached
            return [unusable_connection("database", db.id, system.id, exc)], {}
        return engine.inspect_database(
            system, db, dsn, thresholds, catalog_facts=facts, now=run.now, tz=inventory.timezone
        ), {}

    return Job("database", db.id, system.id, call)


def _host_job(
    inventory: Inventory,
    system: System,
    host: Host,
    repo: CatalogRepository,
    access: Access,
    run: RunContext,
) -> Job:
    from hisops.inspect import engine

    offsets = reader_offsets(repo, host, run)
    previous = fs_previous(repo, host, run.now, run.inspection_run_id)
    thresholds = inventory.thresholds_for(host)

    def call() -> tuple[list[FindingRecord], Offsets]:
        try:
            runner = access.runner_for(host)
        except Exception as exc:
            return [unusable_connection("host", host.id, system.id, exc)], {}
        try:
            findings, new_offsets = engine.inspect_host(
                system,
                host,
                runner,
                thresholds,
                log_offsets=offsets,
                fs_previous=previous,
                base_dir=inventory.base_dir,
                tz=inventory.timezone,
            )
        finally:
            _close(runner)
        return findings, new_offsets

    return Job("host", host.id, system.id, call)


def _endpoint_job(inventory: Inventory, system: System, endpoint: Endpoint) -> Job:
    from hisops.inspect import engine

    thresholds = inventory.thresholds_for(endpoint)
    return Job(
        "endpoint",
        endpoint.id,
        system.id,
        lambda: (engine.inspect_endpoint(system, endpoint, thresholds, tz=inventory.timezone), {}),
    )


def _close(runner: Any) -> None:
    try:
        runner.close()
    except Exception:  # noqa: BLE001 - closing a broken SSH session must not hide the findings
        log.debug("closing runner failed", exc_info=True)


# --------------------------------------------------------------------------- running (targets only)


def run_jobs(
    jobs: Sequence[Job], max_workers: int, progress: Callable[[str], None]
) -> list[TargetResult]:
    """Run the jobs in a bounded pool; results in job order. A crashing job becomes a check-error
    finding."""
    if not jobs:
        return []
    results: dict[int, TargetResult] = {}
    with ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(jobs))), thread_name_prefix="inspect"
    ) as pool:
        futures = {pool.submit(_timed, job): i for i, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results[futures[future]] = result
            progress(progress_line(done, len(jobs), result))
    return [results[i] for i in range(len(jobs))]


def _timed(job: Job) -> TargetResult:
    start = time.monotonic()
    try:
        findings, offsets = job.call()
        crashed = False
    except Exception as exc:  # a bug in a check module must not stop the other targets
        log.exception("inspection of %s %s crashed", job.kind, job.target_id)
        findings, offsets, crashed = (
            [inspection_crashed(job.kind, job.target_id, job.system_id, exc)],
            {},
            True,
        )
    return TargetResult(
        job.kind, job.target_id, list(findings), offsets, time.monotonic() - start, crashed
    )


def progress_line(done: int, total: int, result: TargetResult) -> str:
    counts = Counter(f.severity for f in result.findings)
    worst = ", ".join(f"{k} {counts[k]}" for k in ("critical", "warn", "check_error") if counts[k])
    return (
        f"[{done}/{total}] {result.kind} {result.target_id}: {len(result.findings)} findings"
        f"{' — ' + worst if worst else ' — all ok'} ({result.seconds:.2f}s)"
    )


# --------------------------------------------------------------------------- synthetic findings


def unusable_connection(kind: str, target_id: str, system_id: str, exc: Exception) -> FindingRecord:
    """The target's Airflow connection is missing or wrong: it cannot be reached (critical)."""
    from hisops.inspect.findings import unreachable

    return unreachable(
        kind,
        target_id,
        system_id,  # type: ignore[arg-type]
        f"连接配置不可用 connection not usable — {type(exc).__name__}: {str(exc)[:300]}",
    )


def inspection_crashed(kind: str, target_id: str, system_id: str, exc: Exception) -> FindingRecord:
    """The check code itself failed for this target: a check-error finding carrying the error."""
    from hisops.inspect.findings import check_error

    return check_error(f"{kind}.inspection", kind, target_id, system_id, exc)  # type: ignore[arg-type]


# ----------------------------------------------------------------- recording (catalog writes)


def record(
    system_id: str,
    results: Sequence[TargetResult],
    repo: CatalogRepository,
    run: RunContext,
    known: KnownTargets | None = None,
) -> list[IncidentChange]:
    """Findings, metrics and log offsets to the catalog; incidents folded (not for backfills).

    Idempotent per run: a retried task replaces its findings and samples and re-folds them into
    the incidents without counting anything twice.
    """
    findings = [_owned(f, system_id, run) for r in results for f in r.findings]
    ids = repo.add_findings(run.inspection_run_id, findings)
    _store_metrics(repo, findings, run.inspection_run_id)
    if run.advance_offsets:
        _store_offsets(repo, results, run.inspection_run_id)
    if not run.fold_incidents:
        return []
    changes = [
        c for f, i in zip(findings, ids, strict=True) if (c := repo.upsert_incident_for(f, i))
    ]
    changes += resolve_stale(system_id, results, findings, repo)
    return changes + (close_removed(system_id, known, repo) if known is not None else [])


def _store_offsets(
    repo: CatalogRepository, results: Sequence[TargetResult], inspection_run_id: int
) -> None:
    from hisops.inspect.log_scan import LogOffsets

    for r in results:
        if isinstance(r.offsets, LogOffsets):  # the host's logs were listed (and maybe read)
            repo.save_log_offsets(
                r.target_id,
                r.offsets.reader,
                inspection_run_id,
                dict(r.offsets),
                listed=r.offsets.listed,
            )
        else:
            for path, (inode, offset) in r.offsets.items():
                repo.save_log_offsets(r.target_id, "", inspection_run_id, {path: (inode, offset)})


@dataclass(frozen=True)
class KnownTargets:
    """What the inventory holds now: system ids and, per system, its target ids (logs included)."""

    systems: frozenset[str]
    targets: Mapping[str, frozenset[str]]


def known_targets(inventory: Inventory) -> KnownTargets:
    targets = {}
    for s in inventory.systems:
        ids = {d.id for d in s.databases} | {e.id for e in s.endpoints}
        for h in s.hosts:
            ids |= {h.id} | {f"{h.id}:{src.path}" for src in h.logs}
        targets[s.id] = frozenset(ids)
    return KnownTargets(frozenset(targets), targets)


def close_removed(
    system_id: str, known: KnownTargets, repo: CatalogRepository
) -> list[IncidentChange]:
    """Close inspection incidents whose target (or whole system) left the inventory, saying why.

    Nobody would ever inspect that target again, so nothing else would close them. This system's
    run also closes those of systems that are gone (the row lock makes that happen once).
    """
    changes = []
    for incident in repo.open_incidents():
        if (
            not incident.check_id.startswith(INSPECTION_CHECK_PREFIXES)
            or incident.system_id is None
        ):
            continue
        gone_system = incident.system_id not in known.systems
        if gone_system or (
            incident.system_id == system_id and incident.target_id not in known.targets[system_id]
        ):
            what = ("系统" if gone_system else "目标", "system" if gone_system else "target")
            reason = (
                f"{what[0]}已从清单中移除，事件关闭 ({what[1]} removed from the inventory; "
                "incident closed)"
            )
            change = repo.close_incident(incident.id, reason)
            if change is not None:
                changes.append(change)
    return changes


def _owned(f: FindingRecord, system_id: str, run: RunContext) -> FindingRecord:
    """The finding with its system and, for historical runs, marked as present state."""
    if f.system_id == system_id and not run.historical:
        return f
    details = {**f.details, "present_state": True} if run.historical else f.details
    return replace(f, system_id=f.system_id or system_id, details=details)


def _store_metrics(
    repo: CatalogRepository, findings: Sequence[FindingRecord], inspection_run_id: int | None = None
) -> None:
    from hisops.inspect import engine

    observed = {f.target_id: f.observed_at for f in findings}
    samples = [
        MetricSample(
            t,
            m,
            float(v),
            observed.get(t) or datetime.now().astimezone(),
            inspection_run_id=inspection_run_id,
        )
        for t, m, v in engine.metrics_from(findings)
        if v is not None
    ]
    repo.add_metric_samples(samples)


def resolve_stale(
    system_id: str,
    results: Sequence[TargetResult],
    findings: Sequence[FindingRecord],
    repo: CatalogRepository,
) -> list[IncidentChange]:
    """Resolve open incidents of targets inspected completely this run whose check no longer
    reported.

    A check that stopped producing its finding (an 'inspection crashed' error, a replication
    check after the standby was retired) would otherwise keep its incident open forever.
    Targets that were unreachable, crashed or had a check error are left alone.
    """
    seen = {(f.target_id, f.check_id) for f in findings}
    complete = {t for t in _covered_targets(results) if not _blocked(t, findings)}
    changes = []
    for incident in repo.open_incidents(system_id):
        if incident.target_id in complete and (incident.target_id, incident.check_id) not in seen:
            ok = _no_longer_reported(incident, system_id)
            changes.append(repo.upsert_incident_for(ok, None))
    return [c for c in changes if c is not None]


def _covered_targets(results: Sequence[TargetResult]) -> set[str]:
    covered = set()
    for r in results:
        if not r.crashed:
            covered.add(r.target_id)
            covered.update(f.target_id for f in r.findings)
    return covered


def _blocked(target_id: str, findings: Sequence[FindingRecord]) -> bool:
    """Not every check ran for the target: it was unreachable, or some check could not run
    (a check error may stand in for several checks, e.g. a host script that did not finish)."""
    return any(
        f.target_id == target_id
        and (f.severity == "check_error" or (f.check_id in BLOCKING_CHECKS and f.severity != "ok"))
        for f in findings
    )


def _no_longer_reported(incident: Any, system_id: str) -> FindingRecord:
    return FindingRecord(
        check_id=incident.check_id,
        target_kind=_kind_of(incident.check_id),
        target_id=incident.target_id,
        system_id=system_id,
        severity="ok",
        message_zh="本次巡检该检查项未再报告问题，事件自动关闭",
        message_en="the check no longer reports this problem; incident closed automatically",
    )


_KIND_OF_PREFIX = {
    "database": "database",
    "db": "database",
    "host": "host",
    "log": "log",
    "endpoint": "endpoint",
    "http": "endpoint",
}


def _kind_of(check_id: str) -> Any:
    return _KIND_OF_PREFIX.get(check_id.split(".", 1)[0], "system")


def change_note(change: IncidentChange) -> dict[str, Any]:
    """An incident change as a small JSON-able dict (XCom, notification, report)."""
    i = change.incident
    return {
        "action": change.action,
        "incident_id": i.id,
        "check_id": i.check_id,
        "target_id": i.target_id,
        "system_id": i.system_id,
        "severity": i.severity,
        "previous_severity": change.previous_severity,
        "title_zh": i.title_zh,
        "title_en": i.title_en,
    }


def notifiable(changes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The changes supervisors are told about: new and escalated incidents only."""
    return [c for c in changes if c.get("action") in NOTIFY_ACTIONS]
