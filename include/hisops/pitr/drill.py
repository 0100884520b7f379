"""时间点恢复演练 PITR drill: restore a physical backup to a point, prove the point, check the data.

Steps (:func:`run_pitr_drill`), the scratch cluster stopped and removed whatever happens:

1. target — hisops writes heartbeat markers / a named restore point on production (``markers``),
   while step 2 runs (the target's name is chosen first; recovery waits until it is archived);
2. restore — ``pgbackrest restore --set=<label>`` into a NEW scratch data directory
   ``<scratch_root>/hisops_pitr_<server>_<backup>_<rand>`` (never the production data directory:
   refused by a guard), ``--archive-mode=off`` so the copy never pushes WAL into the repository;
3. recovery — start on a free loopback port (no unix socket), wait until promoted; if recovery
   stops early (a WAL segment missing or corrupt) the failure names the segment from the log;
4. proof — the "before" marker present, the "after" marker absent;
5. checks — per inventory database on the server: the same Great Expectations suite as logical
   drills (tables and columns as on production at the target, primary keys, critical columns,
   foreign keys, inventory expectations; row counts are not compared — no snapshot count exists
   for a point in time) and ``amcheck``, beside each other. Great Expectations is imported during
   recovery; ``pgbackrest verify`` of the backup set (a corrupt file is named) runs beside the
   proof and the checks (:func:`_steps`); a restore or recovery that fails for the backup's sake
   runs verify at once to name the file.

The measured RTO is restore + recovery (until the copy accepts writes). Result: the logical drills'
:class:`hisops.verify.drill.DrillResult`, so recording, evidence and alerts are shared.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from hisops.pitr import markers
from hisops.targets.postgres import (
    as_os_user,
    connect,
    dsn_dbname,
    dsn_with,
    pg_ctl_stop_argv,
    pg_session,
    server_bindir,
)
from hisops.verify import evidence
from hisops.verify.drill import (
    DrillResult,
    DrillStop,
    evidence_dir,
    timed,
    worse_fault,
    write_evidence,
)

if TYPE_CHECKING:
    from hisops.backup.snapshot import SchemaInfo
    from hisops.inventory.models import Database
    from hisops.pitr.pgbackrest import PgBackRest
    from hisops.verify.amcheck import AmcheckResult
    from hisops.verify.gx_runner import CheckOutcome

log = logging.getLogger(__name__)
SCRATCH_PREFIX = "hisops_pitr_"
SCRATCH_RE = re.compile(r"hisops_pitr_[a-z0-9_-]+_\d+_[0-9a-f]{6}")
SEGMENT_RE = re.compile(r"\b([0-9A-F]{24})\b")
RECOVERY_TIMEOUT = 3600.0
PROMOTED_POLL_S = 0.2  # how often recovery's end is asked for (bench/pitr.py's raw contender too)
APP = "hisops-pitr-drill"  # application_name of the drill's sessions


@dataclass(frozen=True)
class PitrDrillRequest:
    backup_id: int
    server_id: str
    label: str
    production_dsn: str  # a database on the production server (markers)
    production_datadir: str
    pgbr: PgBackRest
    scratch_root: Path
    evidence_root: Path
    databases: tuple[
        tuple[Database, str], ...
    ] = ()  # (inventory Database, its dbname) on this server
    target_kind: str = "name"  # name (hisops-made restore point) | latest | time
    target_value: str | None = None
    pg_bindir: Path | None = None
    mode: str = "fast"
    jobs: int = 2
    os_user: str = "postgres"
    verify_repo: bool = True
    tz: str | None = None  # the inventory's timezone, for the evidence page (None: Asia/Shanghai)
    hospital: str | None = None  # the inventory's hospital name, on the evidence page


@dataclass
class _Run:
    req: PitrDrillRequest
    scratch: Path
    port: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fault: str = "none"
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    outcomes: list[CheckOutcome] = field(default_factory=list)  # every database's, for evidence
    amcheck: dict[str, Any] = field(default_factory=dict)
    restore_seconds: float | None = None
    target: markers.Target | None = None

    def fail(self, fault: str, lines: list[str]) -> None:
        self.fault = worse_fault(self.fault, fault)
        self.failures += lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_dir(root: Path, server_id: str, backup_id: int) -> Path:
    return root / f"{SCRATCH_PREFIX}{server_id}_{backup_id}_{secrets.token_hex(3)}"


def assert_scratch(path: Path, production_datadir: str) -> None:
    """Never the production data directory, nor anything not named like a PITR scratch dir."""
    if Path(production_datadir).resolve() == path.resolve() or not SCRATCH_RE.fullmatch(path.name):
        raise DrillStop(
            "configuration", [f"拒绝使用该目录 refusing to use {path} as a scratch data directory"]
        )


# --- running the scratch cluster ----------------------------------------------------------------


def _bindir(req: PitrDrillRequest) -> Path:
    return Path(req.pg_bindir) if req.pg_bindir else server_bindir()


def _as_owner(req: PitrDrillRequest, argv: list[str]) -> list[str]:
    return as_os_user(argv, req.os_user)


def _make_scratch(run: _Run) -> None:
    assert_scratch(run.scratch, run.req.production_datadir)
    run.scratch.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    run.scratch.mkdir(mode=0o700)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(run.req.os_user)
        for p in (run.scratch.parent, run.scratch):
            os.chown(p, pw.pw_uid, pw.pw_gid)


def _restore(run: _Run, target_options: list[str]) -> None:
    req = run.req
    options = [
        f"--set={req.label}",
        f"--pg1-path={run.scratch}",
        "--archive-mode=off",
        *target_options,
    ]
    result = req.pgbr.run("restore", *options, timeout=RECOVERY_TIMEOUT)
    if not result.ok:
        from hisops.pitr.pgbackrest import error_lines

        fault = _restore_fault(error_lines(result))
        lines = [f"pgbackrest restore 失败 failed: {error_lines(result)}"]
        if fault == "backup":  # restore's own error seldom names the file: verify does
            lines += _repo_problems(req, run.timings)
        raise DrillStop(fault, lines)


def _restore_fault(message: str) -> str:
    lowered = message.lower()
    infra = ("no space left", "permission denied", "unable to acquire lock", "could not connect")
    return "infrastructure" if any(m in lowered for m in infra) else "backup"


def _start_options(run: _Run) -> str:
    return (
        f"-c port={run.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c archive_mode=off -c shared_buffers=128MB -c hot_standby=on"
    )


def _start(run: _Run) -> None:
    log_file = run.scratch / "hisops-recovery.log"
    argv = [
        str(_bindir(run.req) / "pg_ctl"),
        "start",
        "-D",
        str(run.scratch),
        "-l",
        str(log_file),
        "-w",
        "-t",
        str(int(RECOVERY_TIMEOUT)),
        "-o",
        _start_options(run),
    ]
    proc = subprocess.run(
        _as_owner(run.req, argv), capture_output=True, text=True, timeout=RECOVERY_TIMEOUT + 60
    )
    if proc.returncode != 0:
        missing = _missing_segments(log_file)
        if missing:
            raise DrillStop(
                "backup",
                [
                    f"恢复失败，缺少或损坏的 WAL 段 recovery failed: WAL segment(s) "
                    f"{', '.join(missing)} missing or corrupt in the archive",
                    *_log_problems(log_file),
                ],
            )
        raise DrillStop(
            "backup",
            [
                f"恢复实例无法启动 scratch server did not start: {proc.stderr.strip()[-500:]}",
                *_log_problems(log_file),
            ],
        )


def _log_text(log_file: Path) -> str:
    try:
        return log_file.read_text(errors="replace")
    except OSError:
        return ""


def _log_problems(log_file: Path) -> list[str]:
    """What the recovery log says went wrong, naming WAL segments where it can."""
    text = _log_text(log_file)
    out = []
    for line in text.splitlines():
        lowered = line.lower()
        if any(k in lowered for k in ("fatal", "panic", "unable to find", "invalid", "could not")):
            segments = sorted(set(SEGMENT_RE.findall(line)))
            prefix = f"WAL 段 segment {', '.join(segments)}: " if segments else ""
            out.append(f"{prefix}{line.strip()[:400]}")
    return out[-8:]


def _missing_segments(log_file: Path) -> list[str]:
    text = _log_text(log_file)
    found = []
    for line in text.splitlines():
        if "unable to find" in line or "could not open file" in line or "invalid" in line.lower():
            found += SEGMENT_RE.findall(line)
    return sorted(set(found))


def _dsn(run: _Run, dbname: str) -> str:
    return dsn_with(run.req.production_dsn, dbname, host="127.0.0.1", port=str(run.port))


def _wait_promoted(run: _Run) -> None:
    import psycopg2

    log_file = run.scratch / "hisops-recovery.log"
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    dsn = _dsn(run, "postgres")
    while True:
        if not (run.scratch / "postmaster.pid").exists():
            missing = _missing_segments(log_file)
            lines = (
                [
                    "恢复提前结束，缺少或损坏的 WAL 段 recovery stopped early: "
                    f"WAL segment(s) {', '.join(missing)} missing or corrupt in the archive"
                ]
                if missing
                else []
            )
            raise DrillStop(
                "backup",
                lines
                + [
                    "恢复实例已退出 the scratch server exited during recovery",
                    *_log_problems(log_file),
                ],
            )
        try:
            conn = connect(dsn, application_name=APP, connect_timeout=3)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if not cur.fetchone()[0]:
                        return
            finally:
                conn.close()
        except psycopg2.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise DrillStop(
                "infrastructure", [f"恢复超时 recovery did not finish in {RECOVERY_TIMEOUT:.0f}s"]
            )
        time.sleep(PROMOTED_POLL_S)


def _stop_and_remove(run: _Run) -> None:
    if (run.scratch / "postmaster.pid").exists():
        argv = pg_ctl_stop_argv(run.scratch, mode="immediate", bindir=_bindir(run.req))
        subprocess.run(_as_owner(run.req, argv), capture_output=True, text=True, timeout=120)
    if SCRATCH_RE.fullmatch(run.scratch.name):
        shutil.rmtree(run.scratch, ignore_errors=True)


def remove_stale(root: Path, older_than_seconds: float = 12 * 3600) -> list[str]:
    """Teardown sweep: scratch directories of killed drills (stopped first)."""
    removed = []
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        if (
            SCRATCH_RE.fullmatch(path.name)
            and time.time() - path.stat().st_mtime > older_than_seconds
        ):
            pid = path / "postmaster.pid"
            if pid.exists():
                subprocess.run(
                    pg_ctl_stop_argv(path, mode="immediate", wait=False), capture_output=True
                )
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


# --- checks -------------------------------------------------------------------------------------


def _prove(run: _Run) -> None:
    dbname = _dbname(run.req.production_dsn)
    problems = markers.prove(run.target, markers.heartbeat_ids(_dsn(run, dbname)))
    if problems:
        raise DrillStop("backup", problems)
    run.notes.append(
        f"已证明恢复点 point proven: target {run.target.kind} {run.target.value or ''} — "
        f"marker #{run.target.before.id if run.target.before else '—'} present, "
        f"#{run.target.after.id if run.target.after else '—'} absent"
    )


def _dbname(dsn: str) -> str:
    return dsn_dbname(dsn) or "postgres"


def _manifest_like(run: _Run, database: Database, production_schema: SchemaInfo) -> SimpleNamespace:
    return SimpleNamespace(
        schema_=production_schema, tables=[], backup_id=run.req.backup_id, database_id=database.id
    )


def production_schema(dsn: str) -> SchemaInfo:
    """Tables/columns/keys of a production database now (at the target, for hisops-made targets)."""
    from hisops.backup.snapshot import schema_info, user_tables

    with pg_session(dsn, target="pitr-schema", statement_timeout_ms=60_000) as conn:
        return schema_info(conn, user_tables(conn))


def _check_database(
    run: _Run, database: Database, dbname: str, schema: SchemaInfo, docs_root: Path
) -> None:
    """GX suite and amcheck of one restored database; amcheck reads index pages in its own
    sessions while GX (mostly Python) drives its queries, as in the logical drill."""
    dsn = _dsn(run, dbname)
    with ThreadPoolExecutor(1, thread_name_prefix="amcheck") as pool:
        pending = pool.submit(_timed_amcheck, run, database, dsn)
        try:
            _expectations(run, database, schema, dsn, docs_root)
        finally:
            checked = pending.result()
    run.amcheck[database.id] = checked.as_dict()
    if checked.problems:
        run.fail(
            "backup",
            [
                f"{database.id}: 索引损坏 index corrupt: {p.index} on {p.table}: {p.error}"
                for p in checked.problems
            ],
        )


def _timed_amcheck(run: _Run, database: Database, dsn: str) -> AmcheckResult:
    from hisops.verify import amcheck

    with timed(run.timings, f"amcheck:{database.id}"):  # a key of its own: no write races
        return amcheck.check_indexes(dsn, jobs=run.req.jobs)


def _expectations(
    run: _Run, database: Database, schema: SchemaInfo, dsn: str, docs_root: Path
) -> None:
    from hisops.verify import gx_runner
    from hisops.verify.expectations import build_plan

    plan = build_plan(_manifest_like(run, database, schema), database, run.req.mode)
    run.notes += [f"{database.id}: {n}" for n in plan.notes if "estimate" not in n]
    if plan.problems:
        run.fail("backup", [f"{database.id}: {p}" for p in plan.problems])
    with timed(run.timings, f"expectations:{database.id}"):
        gx = gx_runner.run_suite(plan, dsn, docs_root / database.id)
    run.outcomes += [replace(o, table=f"{database.id}: {o.table or '—'}") for o in gx.outcomes]
    failed = [o for o in gx.outcomes if not o.success]
    if failed:
        run.fail("backup", [f"{database.id}: {o.line()}" for o in failed])
    if gx.invalid:
        run.fail(
            "configuration",
            [
                f"{database.id}: 清单中的检查无效 invalid inventory expectation: {m}"
                for m in gx.invalid
            ],
        )


def _repo_problems(req: PitrDrillRequest, timings: dict[str, float]) -> list[str]:
    """``pgbackrest verify --set=<label>``: its lines naming invalid or missing files (empty when
    the backup set verified); its seconds into ``timings``."""
    from hisops.pitr.pgbackrest import error_lines

    with timed(timings, "pgbackrest_verify"):
        result = req.pgbr.run("verify", f"--set={req.label}", timeout=RECOVERY_TIMEOUT)
    text = f"{result.stdout}\n{result.stderr}"
    bad = [
        ln.strip()
        for ln in text.splitlines()
        if "invalid" in ln.lower() or "missing" in ln.lower() or " ERROR: " in ln
    ]
    if result.ok and not bad:
        return []
    lines = bad or [error_lines(result)]
    return [f"pgbackrest verify: {line[:400]}" for line in lines[:20]]


# --- the drill ----------------------------------------------------------------------------------


def _target_and_schemas(run: _Run, drill: str) -> dict[str, SchemaInfo]:
    """On production: the markers and restore point (archived before this returns), then each
    database's tables and keys as of the target (the heartbeat table is part of that state)."""
    req = run.req
    with timed(run.timings, "target"):
        run.target = markers.make_target(
            req.production_dsn, req.target_kind, drill, req.target_value
        )
        return {
            db.id: production_schema(dsn_with(req.production_dsn, dbname))
            for db, dbname in req.databases
        }


def _import_gx(run: _Run) -> None:
    """Import Great Expectations beside recovery (an import error is reported by run_suite)."""
    from hisops.verify import gx_runner

    try:
        with timed(run.timings, "gx_import"):
            gx_runner.load_gx()
    except Exception:  # noqa: BLE001 - the import in run_suite reports it properly
        log.exception("great_expectations import failed")


def _verify_problems(run: _Run) -> list[str]:
    """``pgbackrest verify --set`` beside the checks: its problems, or why it could not run."""
    if not run.req.verify_repo:
        return []
    try:
        return _repo_problems(run.req, run.timings)
    except Exception as exc:  # noqa: BLE001 - reported as the verify's own failure
        return [f"pgbackrest verify: {type(exc).__name__}: {exc}"[:400]]


def _steps(run: _Run, docs_root: Path, pool: ThreadPoolExecutor) -> None:
    """The critical path is restore → recovery → checks, as an operator's restore would be (so the
    measured RTO is a plain restore's). Beside it, in ``pool``: the markers while the set is
    restored (recovery only needs them archived before it starts); the Great Expectations import
    during recovery; ``pgbackrest verify`` once recovery is done (it reads the repository, the
    checks the scratch copy). Peak memory: one pgBackRest process set plus GX."""
    req = run.req
    drill = f"{req.backup_id}_{secrets.token_hex(3)}"
    value = markers.target_value(req.target_kind, drill, req.target_value)
    prepared = pool.submit(_target_and_schemas, run, drill)
    start = time.monotonic()
    with timed(run.timings, "restore"):
        _make_scratch(run)
        _restore(run, markers.restore_options(req.target_kind, value))
    with timed(run.timings, "target_wait"):
        schemas = prepared.result()
    gx_loaded = pool.submit(_import_gx, run)
    try:
        with timed(run.timings, "recovery"):
            _start(run)
            _wait_promoted(run)
        run.restore_seconds = round(time.monotonic() - start, 3)
    except DrillStop as stop:  # name a corrupt file too, when verify finds one
        raise DrillStop(stop.fault, [*stop.failures, *_verify_problems(run)]) from stop
    # after recovery: its reads of the repository would slow recovery, the measured RTO
    verified = pool.submit(_verify_problems, run)
    try:
        _prove(run)
    except DrillStop as stop:
        raise DrillStop(stop.fault, [*stop.failures, *verified.result()]) from stop
    with timed(run.timings, "gx_import_wait"):
        gx_loaded.result()
    with timed(run.timings, "checks"):
        for database, dbname in req.databases:
            _check_database(run, database, dbname, schemas[database.id], docs_root)
    with timed(run.timings, "verify_wait"):
        problems = verified.result()
    if problems:
        run.fail("backup", problems)


def run_pitr_drill(req: PitrDrillRequest) -> DrillResult:
    """Run one PITR drill end to end (never raises for what it finds: see ``DrillResult.fault``)."""
    run = _Run(req, scratch_dir(req.scratch_root, req.server_id, req.backup_id), free_port())
    directory = evidence_dir(req.evidence_root, req.server_id, req.backup_id, run.started_at)
    begin = time.monotonic()
    try:
        with ThreadPoolExecutor(3, thread_name_prefix="pitr-beside") as pool:
            _steps(run, directory, pool)
    except DrillStop as stop:
        run.fail(stop.fault, stop.failures)
    except markers.MarkerError as exc:
        run.fail("infrastructure", [str(exc)])
    except Exception as exc:  # noqa: BLE001 - anything else: we could not perform the drill
        log.exception("PITR 演练中断 drill of backup %s aborted", req.backup_id)
        run.fail(
            "infrastructure",
            [f"演练无法完成 drill could not be completed: {type(exc).__name__}: {exc}"[:1000]],
        )
    finally:
        with timed(run.timings, "teardown"):
            _stop_and_remove(run)
    run.timings["total"] = round(time.monotonic() - begin, 3)
    if run.target is not None:
        run.notes.append(f"target: {run.target.as_dict()}")
    failed = [o for o in run.outcomes if not o.success]
    result = DrillResult(
        backup_id=req.backup_id,
        database_id=req.server_id,
        ok=run.fault == "none",
        fault=run.fault,  # type: ignore[arg-type]
        mode=f"pitr-{req.mode}",
        started_at=run.started_at,
        finished_at=datetime.now(UTC),
        scratch_db=str(run.scratch),
        restore_seconds=run.restore_seconds,
        failures=tuple(run.failures),
        checks_total=len(run.outcomes),
        checks_failed=len(failed),
        failed_checks=tuple(o.as_dict() for o in failed),
        amcheck=run.amcheck,
        evidence_path=str(directory / evidence.PAGE),  # GX's Data Docs in one folder per database
        notes=tuple(run.notes),
        timings=dict(run.timings),
    )
    write_evidence(directory, result)
    evidence.write_evidence_page(directory, result, run.outcomes, tz=req.tz, hospital=req.hospital)
    log.info("%s", result.summary())
    return result


# --- a copy that stays: PITR restore on demand (hisops.restore.pitr) ----------------------------


def restore_into(req: PitrDrillRequest, datadir: Path, target: markers.Target) -> None:
    """``pgbackrest restore --set=<req.label>`` into ``datadir`` (new, made by the caller) to
    ``target``, with the drill's options (``--archive-mode=off``); DrillStop naming the cause."""
    _restore(_Run(req, datadir, 0), target.restore_options())


def start_and_wait(req: PitrDrillRequest, datadir: Path, port: int) -> None:
    """Start a restored data directory on loopback ``port`` and wait until recovery promoted it
    (DrillStop naming a missing WAL segment when recovery stops early)."""
    run = _Run(req, datadir, port)
    _start(run)
    _wait_promoted(run)


def stop_cluster(req: PitrDrillRequest, datadir: Path) -> None:
    """Stop a cluster started by :func:`start_and_wait` (removes nothing that is not a drill's)."""
    _stop_and_remove(_Run(req, datadir, 0))
