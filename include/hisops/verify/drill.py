"""恢复演练 One restore drill: is this backup really restorable, and is the restored data right?

Steps (:func:`run_drill`), each stopping the drill only when what follows cannot be trusted:

1. manifest — readable, and the same one the catalog recorded (SHA-256);
2. files — every file's size and SHA-256 as in the manifest (and decryptable, when encrypted);
3. restore — ``pg_restore --jobs`` into a scratch database (``hisops_drill_…``); its duration is the
   measured RTO (decryption included);
4. checks — the Great Expectations suite (``expectations.build_plan``) inside PostgreSQL, the
   restored schema compared with the manifest's, ``amcheck`` on every btree index;
5. evidence — GX Data Docs + ``drill.json`` under ``<reports>/verification/<db>/<time>-backup<id>/``
   (0700/0600); the scratch database is dropped whatever happened (try/finally here, plus the DAG's
   teardown task for a killed worker).

The result says *whose* fault a failure is: ``backup`` (the backup or its data is wrong: mark it
failed), ``infrastructure`` (we could not perform the drill: scratch server, disk, GX) or
``configuration`` (missing key, invalid inventory expectation) — the last two leave the backup's
state alone but are still recorded, alerted and never count as verified.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hisops.verify import amcheck, evidence, gx_runner, scratch
from hisops.verify.expectations import Mode, build_plan

if TYPE_CHECKING:
    from hisops.backup.manifest import Manifest
    from hisops.inventory.models import Database

log = logging.getLogger(__name__)

Fault = Literal["none", "backup", "infrastructure", "configuration"]
#: whose fault wins when a drill finds several (not a severity: ``verify.record`` maps faults to
#: ``hisops.severity``); the backup's own fault outranks what kept us from drilling
FAULT_RANK: dict[str, int] = {"none": 0, "configuration": 1, "infrastructure": 2, "backup": 3}
EVIDENCE_JSON = "drill.json"
_INFRA_MARKERS = (
    "could not connect",
    "connection to server",
    "no space left",
    "could not extend",
    "out of memory",
    "too many clients",
    "permission denied to create",
    "timeout expired",
)


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Seconds the ``with`` block took, into ``timings[step]`` (also when it raises)."""
    start = time.monotonic()
    try:
        yield
    finally:
        timings[step] = round(time.monotonic() - start, 3)


def worse_fault(current: Fault, found: Fault) -> Fault:
    """The fault a drill reports once ``found`` adds to ``current`` (see :data:`FAULT_RANK`)."""
    return found if FAULT_RANK[found] > FAULT_RANK[current] else current


class DrillStop(Exception):
    """A step found what makes the rest of the drill meaningless (e.g. a corrupt file)."""

    def __init__(self, fault: Fault, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.fault, self.failures = fault, failures


@dataclass(frozen=True)
class DrillRequest:
    """Everything one drill needs, resolved by the Airflow glue (or a test, or the benchmark)."""

    backup_id: int
    database_id: str
    backup_dir: Path
    server_dsn: str  # any database on the server that hosts the scratch database
    evidence_root: Path  # <reports.path>/verification
    scratch_name: str | None = None  # planned by the DAG's setup task so its teardown can drop it
    database: Database | None = None  # the inventory's (critical columns, expectations)
    jobs: int = 2
    mode: Mode = "fast"
    pg_bindir: str | None = None
    encryption_key: str | None = field(default=None, repr=False)
    expected_manifest_sha256: str | None = None
    heapallindexed: bool = False
    before_checks: Callable[[str], None] | None = None  # test hook: called with the scratch DSN
    tz: str | None = None  # the inventory's timezone, for the evidence page (None: Asia/Shanghai)
    hospital: str | None = None  # the inventory's hospital name, on the evidence page


@dataclass(frozen=True)
class DrillResult:
    """The typed outcome: stored in the catalog (details), rendered in reports, returned to the
    DAG."""

    backup_id: int
    database_id: str
    ok: bool
    fault: Fault
    mode: str
    started_at: datetime
    finished_at: datetime
    scratch_db: str
    restore_seconds: float | None = None
    failures: tuple[str, ...] = ()
    checks_total: int = 0
    checks_failed: int = 0
    failed_checks: tuple[dict[str, Any], ...] = ()
    amcheck: dict[str, Any] = field(default_factory=dict)
    evidence_path: str | None = None
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return None if self.ok else "; ".join(self.failures)[:2000] or self.fault

    def summary(self) -> str:
        if self.ok:
            return (
                f"备份 #{self.backup_id} ({self.database_id}) 恢复演练通过："
                f"{self.checks_total} 项检查全部通过，"
                f"恢复用时 {self.restore_seconds or 0:.1f}s / restore drill passed: "
                f"all {self.checks_total} checks, restore {self.restore_seconds or 0:.1f}s"
            )
        return (
            f"备份 #{self.backup_id} ({self.database_id}) 恢复演练失败 restore drill FAILED "
            f"({self.fault}): " + "; ".join(self.failures[:5])
        )

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data.update(
            started_at=self.started_at.isoformat(),
            finished_at=self.finished_at.isoformat(),
            failures=list(self.failures),
            failed_checks=list(self.failed_checks),
            notes=list(self.notes),
            error=self.error,
        )
        return data


@dataclass
class _State:
    """What a running drill has found so far."""

    req: DrillRequest
    scratch_db: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fault: Fault = "none"
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    restore_seconds: float | None = None
    gx: gx_runner.GxRun | None = None
    amcheck: amcheck.AmcheckResult | None = None
    evidence: Path | None = None
    lock: threading.Lock = field(
        default_factory=threading.Lock
    )  # amcheck reports from its own thread
    created_roles: list[str] = field(
        default_factory=list
    )  # deep drills: dropped after the scratch db

    def fail(self, fault: Fault, lines: list[str]) -> None:
        with self.lock:
            self.fault = worse_fault(self.fault, fault)
            self.failures += lines

    def timed(self, step: str) -> contextlib.AbstractContextManager[None]:
        return timed(self.timings, step)

    def result(self) -> DrillResult:
        outcomes = self.gx.outcomes if self.gx else []
        failed = [o.as_dict() for o in outcomes if not o.success]
        return DrillResult(
            backup_id=self.req.backup_id,
            database_id=self.req.database_id,
            ok=self.fault == "none",
            fault=self.fault,
            mode=self.req.mode,
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            scratch_db=self.scratch_db,
            restore_seconds=self.restore_seconds,
            failures=tuple(self.failures),
            checks_total=len(outcomes),
            checks_failed=len(failed),
            failed_checks=tuple(failed),
            amcheck=self.amcheck.as_dict() if self.amcheck else {},
            evidence_path=str(self.evidence) if self.evidence else None,
            notes=tuple(self.notes),
            timings=dict(self.timings),
        )


# --- steps ---------------------------------------------------------------------------------------


def _manifest(state: _State) -> Manifest:
    from hisops.backup.manifest import ManifestError, load_manifest, manifest_sha256

    try:
        manifest = load_manifest(state.req.backup_dir)
    except ManifestError as exc:
        raise DrillStop("backup", [str(exc)]) from exc
    expected = state.req.expected_manifest_sha256
    if expected and manifest_sha256(state.req.backup_dir) != expected:
        raise DrillStop(
            "backup",
            [
                "清单与运维目录记录不符 manifest.json differs from the one the catalog recorded "
                f"(sha256 {expected[:16]}…): {state.req.backup_dir / 'manifest.json'}"
            ],
        )
    if manifest.backup_id != state.req.backup_id:
        raise DrillStop(
            "backup",
            [
                f"清单属于另一个备份 manifest is for backup {manifest.backup_id}, "
                f"not {state.req.backup_id}"
            ],
        )
    return manifest


def _checksums(state: _State, manifest: Manifest) -> None:
    from hisops.backup.manifest import verify_files

    with state.timed("checksums"):
        problems = verify_files(state.req.backup_dir, manifest, workers=max(2, state.req.jobs))
    if problems:
        raise DrillStop("backup", problems)
    log.info(
        "校验和 checksums: %d files OK (%.1fs)", len(manifest.files), state.timings["checksums"]
    )


@contextmanager
def _dump_dir(state: _State, manifest: Manifest) -> Iterator[Path]:
    """The pg_dump directory to restore from: as stored, or a decrypted private copy (removed
    after)."""
    dump = state.req.backup_dir / "dump"
    if manifest.encryption is None:
        yield dump
        return
    if not state.req.encryption_key:
        raise DrillStop(
            "configuration",
            [
                f"备份已加密但没有密钥 backup is encrypted but no key was given "
                f"(connection {manifest.encryption.key_conn_id})"
            ],
        )
    work = Path(tempfile.mkdtemp(prefix=".hisops-drill-", dir=state.req.backup_dir.parent))
    try:
        with state.timed("decrypt"):
            _decrypt(dump, work / "dump", state.req.encryption_key)
        yield work / "dump"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _decrypt(src: Path, dst: Path, key: str) -> None:
    from hisops.backup.crypto import DecryptionError, decrypt_tree

    try:
        decrypt_tree(src, dst, key)
    except DecryptionError as exc:
        raise DrillStop("backup", [str(exc)]) from exc


def _restore_fault(message: str) -> Fault:
    lowered = message.lower()
    return "infrastructure" if any(m in lowered for m in _INFRA_MARKERS) else "backup"


def _restore(state: _State, manifest: Manifest, dump: Path, dsn: str) -> None:
    with state.timed("restore"):
        try:
            tool = scratch.find_pg_restore(state.req.pg_bindir, manifest.tool.pg_dump_version)
        except scratch.RestoreError as exc:
            raise DrillStop("infrastructure", [str(exc)]) from exc
        keep_owners = _prepare_owners(state, manifest)
        try:
            run = scratch.run_pg_restore(
                dump, dsn, jobs=state.req.jobs, tool=tool, keep_owners=keep_owners
            )
        except scratch.RestoreError as exc:
            raise DrillStop(_restore_fault(str(exc)), [str(exc)]) from exc
    state.restore_seconds = round(run.seconds + state.timings.get("decrypt", 0.0), 3)
    log.info(
        "恢复 restored %s into %s in %.1fs (pg_restore -j%d)",
        state.req.database_id,
        state.scratch_db,
        run.seconds,
        run.jobs,
    )


def _prepare_owners(state: _State, manifest: Manifest) -> bool:
    """deep mode: restore owners and privileges, creating roles the drill server lacks from the
    backup's globals (dropped after the drill). Backups without globals: data only, with a note."""
    from hisops.verify import roles

    if state.req.mode != "deep":
        return False
    names = roles.globals_roles(state.req.backup_dir, manifest, state.req.encryption_key)
    if names is None:
        state.notes.append(
            "备份没有全局对象，未恢复属主与权限 backup has no globals: owners and privileges "
            "not restored"
        )
        return False
    state.created_roles = roles.ensure_roles(state.req.server_dsn, names)
    state.notes.append(
        f"恢复属主与权限 owners and privileges restored ({len(names)} roles in the backup's "
        f"globals, {len(state.created_roles)} created for the drill)"
    )
    return True


def _schema_differences(expected: dict[str, Any], restored: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(expected) & set(restored)):
        a, b = expected[name].model_dump(mode="json"), restored[name].model_dump(mode="json")
        parts = [k for k in a if a[k] != b.get(k)]
        if parts:
            out.append(
                f"表结构与备份不符 schema differs from the backup: {name} ({', '.join(parts)})"
            )
    return out


def _schema(state: _State, manifest: Manifest, dsn: str) -> None:
    from hisops.backup.snapshot import schema_info, user_tables
    from hisops.targets.postgres import connect

    conn = connect(dsn, application_name="hisops-drill", connect_timeout=15)
    try:
        restored = schema_info(conn, user_tables(conn)).tables
    finally:
        conn.close()
    diffs = _schema_differences(manifest.schema_.tables, restored)
    if diffs:
        state.fail("backup", diffs)


def _checks(state: _State, manifest: Manifest, dsn: str, docs_dir: Path) -> None:
    from hisops.backup.storage import make_dirs

    make_dirs(
        docs_dir
    )  # 0700 from the verification root down, before GX writes patient-derived pages
    plan = build_plan(manifest, state.req.database, state.req.mode)
    state.notes += plan.notes
    if plan.problems:
        state.fail("backup", list(plan.problems))
    with state.timed("expectations"):
        state.gx = gx_runner.run_suite(plan, dsn, docs_dir)
    if state.gx.invalid:
        state.fail(
            "configuration",
            [f"清单中的检查无效 invalid inventory expectation: {m}" for m in state.gx.invalid],
        )
    failed = state.gx.failed
    if failed:
        state.fail("backup", [o.line() for o in failed])
    with state.timed("schema"):
        _schema(state, manifest, dsn)


def _amcheck(state: _State, dsn: str) -> None:
    with state.timed("amcheck"):
        state.amcheck = amcheck.check_indexes(
            dsn, jobs=state.req.jobs, heapallindexed=state.req.heapallindexed
        )
    if state.amcheck.unavailable:
        state.notes.append(state.amcheck.unavailable)
    lines = [
        f"索引损坏 index corrupt: {p.index} on {p.table}: {p.error}" for p in state.amcheck.problems
    ]
    if lines:
        state.fail("backup", lines)


# --- evidence ------------------------------------------------------------------------------------


def evidence_dir(root: Path, database_id: str, backup_id: int, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / database_id / f"{stamp}-backup{backup_id}"


def _fallback_page(result: DrillResult) -> str:
    """A bilingual page for drills that stopped before GX ran (corrupt file, failed restore)."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in result.failures) or "<li>—</li>"
    return (
        f'<!doctype html><html lang="zh"><meta charset="utf-8"><title>恢复演练 Restore drill '
        f"#{result.backup_id}</title><body><h1>恢复演练 Restore drill — "
        f"{html.escape(result.database_id)} "
        f"备份 backup #{result.backup_id}</h1><p>结果 Result: "
        f"<b>{'通过 passed' if result.ok else '失败 FAILED'}"
        f"</b> ({html.escape(result.fault)})</p><p>时间 Time: {result.started_at.isoformat()} → "
        f"{result.finished_at.isoformat()}</p><h2>问题 Problems</h2><ul>{items}</ul>"
        "</body></html>\n"
    )


def write_evidence(directory: Path, result: DrillResult) -> Path:
    """drill.json (+ a fallback index.html when GX did not run); 0700 dirs, 0600 files."""
    from hisops.backup import storage

    storage.make_dirs(directory)
    storage.write_private(
        directory / EVIDENCE_JSON,
        json.dumps(result.as_dict(), ensure_ascii=False, indent=1, default=str).encode(),
    )
    index = directory / "index.html"
    if not index.exists():
        storage.write_private(index, _fallback_page(result).encode())
    storage.tighten(directory)
    return index


# --- the drill -----------------------------------------------------------------------------------


@contextmanager
def _scratch(state: _State) -> Iterator[str]:
    """The scratch database, dropped on the way out whatever happened (both steps timed)."""
    server = state.req.server_dsn
    with state.timed("create_db"):
        scratch.drop_database(
            server, state.scratch_db
        )  # a leftover of a killed try of this same drill
        scratch.create_database(server, state.scratch_db)
    try:
        yield scratch.dsn_with(server, state.scratch_db)
    finally:
        with state.timed("drop_db"):
            try:
                scratch.drop_database(server, state.scratch_db)
            except Exception:  # noqa: BLE001 - the DAG's teardown retries; never mask the real outcome
                log.exception("演练库删除失败 could not drop scratch database %s", state.scratch_db)
            _drop_created_roles(state)


def _drop_created_roles(state: _State) -> None:
    from hisops.verify import roles

    try:
        roles.drop_roles(state.req.server_dsn, state.created_roles)
    except Exception:  # noqa: BLE001 - reported, never masks the outcome
        log.exception(
            "演练创建的角色未能删除 could not drop roles created for the drill: %s",
            state.created_roles,
        )


def _inside_scratch(state: _State, manifest: Manifest, docs_dir: Path) -> None:
    with _dump_dir(state, manifest) as dump, _scratch(state) as dsn:
        _restore(state, manifest, dump, dsn)
        if state.req.before_checks is not None:
            state.req.before_checks(dsn)
        # amcheck reads index pages in its own sessions while GX (mostly Python) drives its queries
        with ThreadPoolExecutor(1, thread_name_prefix="amcheck") as pool:
            pending = pool.submit(_amcheck, state, dsn)
            try:
                _checks(state, manifest, dsn, docs_dir)
            finally:
                pending.result()


def _steps(state: _State, docs_dir: Path) -> None:
    with state.timed("manifest"):
        manifest = _manifest(state)
    _checksums(state, manifest)
    with state.timed("scratch"):
        _inside_scratch(state, manifest, docs_dir)


def run_drill(req: DrillRequest) -> DrillResult:
    """Run one restore drill end to end (never raises for what it finds: see
    ``DrillResult.fault``)."""
    name = req.scratch_name or scratch.scratch_name(req.database_id, req.backup_id)
    state = _State(req, name)
    gx_runner.preload()
    directory = evidence_dir(req.evidence_root, req.database_id, req.backup_id, state.started_at)
    start = time.monotonic()
    try:
        _steps(state, directory)
    except DrillStop as stop:
        state.fail(stop.fault, stop.failures)
    except Exception as exc:  # noqa: BLE001 - anything else: we could not perform the drill
        log.exception("演练中断 drill of backup %s aborted", req.backup_id)
        state.fail(
            "infrastructure",
            [f"演练无法完成 drill could not be completed: {type(exc).__name__}: {exc}"[:1000]],
        )
    state.timings["total"] = round(time.monotonic() - start, 3)
    state.evidence = directory / evidence.PAGE  # our offline page; GX's Data Docs stay beside it
    result = state.result()
    write_evidence(directory, result)
    evidence.write_evidence_page(
        directory,
        result,
        state.gx.outcomes if state.gx else [],
        tz=req.tz,
        hospital=req.hospital,
    )
    log.info("%s", result.summary())
    return result
