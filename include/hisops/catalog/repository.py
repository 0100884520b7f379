"""The one way code reads and writes the ops catalog.

Every public method is one short transaction and speaks in records (:mod:`.records`);
no SQL leaves this module. Timestamps the code does not pass in come from the database
clock (``now()``), so every worker agrees on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    case,
    create_engine,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hisops.catalog import auditchain
from hisops.catalog import tables as T
from hisops.catalog.records import (
    SEVERITY_RANK,
    AuditEventRecord,
    AuditExportRecord,
    AuditResult,
    BackupKind,
    BackupRecord,
    BackupState,
    ChangeRecord,
    CleanupFileRecord,
    CleanupRunRecord,
    CleanupStepRecord,
    FindingDaily,
    FindingRecord,
    IncidentChange,
    IncidentRecord,
    InspectionRunRecord,
    LogOffset,
    MaintenanceRecord,
    MetricDaily,
    MetricSample,
    ProposalRecord,
    ProposalState,
    PruneBatch,
    SecurityBaselineRecord,
    SelfcheckRecord,
    StatementSnapshot,
    StorageLocation,
    VerificationRecord,
    worse,
)
from hisops.catalog.repository_base import CatalogError
from hisops.catalog.repository_change import ChangeSteps
from hisops.catalog.repository_kpi import KpiQueries, ReportArchive


class BackupStateError(CatalogError):
    """A backup was asked to move to a state its current state does not lead to."""


def _json(value: Any) -> str:
    """JSONB serializer: keep Chinese readable, render dates/paths/decimals as text."""
    return json.dumps(value, ensure_ascii=False, default=str)


class CatalogRepository(KpiQueries, ReportArchive, ChangeSteps):
    """Typed access to the ``hisops`` schema; construct once per process and share.

    The KPI aggregates and the report/evidence archive live in :mod:`.repository_kpi`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, **engine_kwargs: Any) -> CatalogRepository:
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": _json, **engine_kwargs}
        return cls(create_engine(url, **kwargs))

    def dispose(self) -> None:
        self.engine.dispose()

    # --- 自检 selfcheck -----------------------------------------------------------------------
    def record_selfcheck(
        self,
        results: list[dict[str, Any]],
        ok: bool,
        dag_run_id: str | None = None,
        started_at: datetime | None = None,
    ) -> int:
        t = T.selfcheck_run
        return self._scalar(
            insert(t)
            .values(
                results=list(results),
                ok=ok,
                dag_run_id=dag_run_id,
                started_at=started_at or func.now(),
                finished_at=func.now(),
            )
            .returning(t.c.id)
        )

    def latest_selfcheck(self) -> SelfcheckRecord | None:
        t = T.selfcheck_run
        return self._first(
            SelfcheckRecord, select(t).order_by(t.c.started_at.desc(), t.c.id.desc())
        )

    # --- 巡检 inspection runs and findings -----------------------------------------------------
    def start_inspection_run(
        self, dag_id: str, run_id: str, logical_date: datetime | None = None
    ) -> int:
        """The id of the inspection run for this DAG run; a retried task gets the same id back."""
        t = T.inspection_run
        stmt = pg_insert(t).values(dag_id=dag_id, run_id=run_id, logical_date=logical_date)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.dag_id, t.c.run_id],
            set_={
                "state": "running",
                "finished_at": None,
                "logical_date": stmt.excluded.logical_date,
            },
        )
        return self._scalar(stmt.returning(t.c.id))

    def finish_inspection_run(
        self, inspection_run_id: int, state: str, report_path: str | None = None
    ) -> None:
        t = T.inspection_run
        values: dict[str, Any] = {"state": state, "finished_at": func.now()}
        if report_path is not None:
            values["report_path"] = report_path
        self._require(
            update(t).where(t.c.id == inspection_run_id).values(**values),
            f"inspection run {inspection_run_id}",
        )

    def get_inspection_run(self, inspection_run_id: int) -> InspectionRunRecord | None:
        t = T.inspection_run
        return self._first(InspectionRunRecord, select(t).where(t.c.id == inspection_run_id))

    def recent_inspection_runs(self, limit: int = 20) -> list[InspectionRunRecord]:
        """Newest inspection runs first (the O&M centre's report list)."""
        t = T.inspection_run
        return self._all(
            InspectionRunRecord,
            select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit),
        )

    def add_findings(self, inspection_run_id: int, findings: Sequence[FindingRecord]) -> list[int]:
        """Store findings; returns their ids in the order given.

        One row per (run, target, check): a retried task replaces its earlier rows (same ids), so
        nothing is stored twice and incidents that point at them stay valid.
        """
        if not findings:
            return []
        t = T.finding
        latest = {(f.target_id, f.check_id): _finding_row(f, inspection_run_id) for f in findings}
        rows = list(latest.values())
        stmt = pg_insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.inspection_run_id, t.c.target_id, t.c.check_id],
            set_={
                c: stmt.excluded[c]
                for c in rows[0]
                if c not in ("inspection_run_id", "target_id", "check_id")
            },
        )
        with self.engine.begin() as conn:
            ids = list(
                conn.execute(stmt.returning(t.c.id, sort_by_parameter_order=True), rows).scalars()
            )
        by_key = dict(zip(latest, ids, strict=True))
        return [by_key[(f.target_id, f.check_id)] for f in findings]

    def findings_for(self, inspection_run_id: int) -> list[FindingRecord]:
        t = T.finding
        return self._all(
            FindingRecord,
            select(t).where(t.c.inspection_run_id == inspection_run_id).order_by(t.c.id),
        )

    # --- 事件 incidents ------------------------------------------------------------------------
    def upsert_incident_for(
        self, finding: FindingRecord, finding_id: int | None
    ) -> IncidentChange | None:
        """Fold one finding into the incident for its check+target.

        warn/critical/check_error opens an incident or updates the open one ('opened',
        'escalated' when the severity got worse, else 'updated'; severity never goes down while
        open). ok resolves the open incident ('resolved'), or returns None if none is open.
        A stored finding folds once: folding it again (a retried task) changes nothing and
        returns what the first fold did ('opened'/'resolved', else 'updated').
        """
        with self.engine.begin() as conn:
            if (
                finding_id is not None
                and (replay := _replayed(conn, finding, finding_id)) is not None
            ):
                return replay
            current = _lock_open_incident(conn, finding.check_id, finding.target_id)
            if finding.severity == "ok":
                return None if current is None else _resolve(conn, current, finding, finding_id)
            if current is None:
                opened = _try_open(conn, finding, finding_id)
                if opened is not None:
                    return opened
                current = _lock_open_incident(
                    conn, finding.check_id, finding.target_id
                )  # lost a race
            return _touch(conn, current, finding, finding_id)

    def close_incident(self, incident_id: int, resolution: str) -> IncidentChange | None:
        """Resolve an open incident without a finding (its target left
        the inventory), saying why."""
        t = T.incident
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t).where(t.c.id == incident_id, t.c.state != "resolved").with_for_update()
            ).first()
            if row is None:
                return None
            current = IncidentRecord(**row._mapping)
            done = conn.execute(
                update(t)
                .where(t.c.id == incident_id)
                .values(state="resolved", resolved_at=func.now(), resolution_note=resolution[:2000])
                .returning(*t.c)
            ).one()
        return IncidentChange(
            "resolved", IncidentRecord(**done._mapping), previous_severity=current.severity
        )

    def get_incident(self, incident_id: int) -> IncidentRecord | None:
        t = T.incident
        return self._first(IncidentRecord, select(t).where(t.c.id == incident_id))

    def open_incidents(self, system_id: str | None = None) -> list[IncidentRecord]:
        """Unresolved incidents, worst first, then oldest first."""
        t = T.incident
        stmt = select(t).where(t.c.state != "resolved")
        if system_id is not None:
            stmt = stmt.where(t.c.system_id == system_id)
        rank = case(dict(SEVERITY_RANK), value=t.c.severity, else_=0)
        return self._all(IncidentRecord, stmt.order_by(rank.desc(), t.c.opened_at, t.c.id))

    def incidents(self, since: datetime | None = None, limit: int = 1000) -> list[IncidentRecord]:
        """Incidents opened since ``since`` (all states), newest first: KPI input (MTTA/MTTR)."""
        t = T.incident
        stmt = select(t).order_by(t.c.opened_at.desc(), t.c.id.desc()).limit(limit)
        return self._all(
            IncidentRecord, stmt if since is None else stmt.where(t.c.opened_at >= since)
        )

    def acknowledge_incident(self, incident_id: int, by: str) -> bool:
        """open → acknowledged; False when the incident is not open
        (already acked, resolved, unknown)."""
        t = T.incident
        stmt = (
            update(t)
            .where(t.c.id == incident_id, t.c.state == "open")
            .values(state="acknowledged", acknowledged_at=func.now(), acknowledged_by=by)
        )
        return self._rowcount(stmt) == 1

    # --- 备份 backups --------------------------------------------------------------------------
    def register_backup_start(
        self,
        database_id: str,
        system_id: str | None,
        kind: BackupKind,
        path: str | None,
        dag_run_id: str | None = None,
    ) -> int:
        t = T.backup
        return self._scalar(
            insert(t)
            .values(
                database_id=database_id,
                system_id=system_id,
                kind=kind,
                path=path,
                dag_run_id=dag_run_id,
            )
            .returning(t.c.id)
        )

    def complete_backup(
        self,
        backup_id: int,
        manifest: Mapping[str, Any],
        manifest_sha256: str,
        size_bytes: int,
        path: str | None = None,
    ) -> None:
        """running → completed."""
        values: dict[str, Any] = {
            "state": "completed",
            "finished_at": func.now(),
            "manifest": dict(manifest),
            "manifest_sha256": manifest_sha256,
            "size_bytes": size_bytes,
        }
        if path is not None:
            values["path"] = path
        self._move_backup(backup_id, ("running",), values)

    def fail_backup(self, backup_id: int, error: str) -> None:
        """running/completed → failed."""
        values = {
            "state": "failed",
            "error": error,
            "finished_at": func.coalesce(T.backup.c.finished_at, func.now()),
        }
        self._move_backup(backup_id, ("running", "completed"), values)

    def mark_backup_verified(self, backup_id: int) -> None:
        """completed → verified (re-verifying a verified backup is fine)."""
        self._move_backup(backup_id, ("completed", "verified"), {"state": "verified"})

    def mark_backup_verification_failed(self, backup_id: int, error: str) -> None:
        """completed/verified → failed: a backup that does not restore is no backup."""
        self._move_backup(backup_id, ("completed", "verified"), {"state": "failed", "error": error})

    def _move_backup(
        self, backup_id: int, allowed: tuple[BackupState, ...], values: dict[str, Any]
    ) -> None:
        t = T.backup
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(t).where(t.c.id == backup_id, t.c.state.in_(allowed)).values(**values)
            )
            if moved.rowcount == 1:
                return
            state = conn.execute(select(t.c.state).where(t.c.id == backup_id)).scalar_one_or_none()
        if state is None:
            raise BackupStateError(f"backup {backup_id} does not exist")
        raise BackupStateError(
            f"backup {backup_id} is {state!r}; {values['state']!r} needs one of {allowed}"
        )

    def mark_backup_missing(self, backup_id: int, reason: str) -> bool:
        """completed/verified → missing: its files vanished from storage; False if it was not
        completed/verified (already missing, failed, running). Never again "last verified"."""
        t = T.backup
        stmt = (
            update(t)
            .where(t.c.id == backup_id, t.c.state.in_(("completed", "verified")))
            .values(state="missing", error=reason[:2000])
        )
        return self._rowcount(stmt) == 1

    def mark_backup_deleted(self, backup_id: int, reason: str) -> bool:
        """Record that the backup's files were removed (retention); False if it already was."""
        t = T.backup
        stmt = (
            update(t)
            .where(t.c.id == backup_id, t.c.deleted_at.is_(None))
            .values(deleted_at=func.now(), deleted_reason=reason)
        )
        return self._rowcount(stmt) == 1

    def get_backup(self, backup_id: int) -> BackupRecord | None:
        t = T.backup
        return self._first(BackupRecord, select(t).where(t.c.id == backup_id))

    def latest_verified_backup(self, database_id: str) -> BackupRecord | None:
        """The newest verified backup whose files still exist (the restore source, the
        maintenance gate)."""
        t = T.backup
        stmt = (
            select(t)
            .where(
                t.c.database_id == database_id, t.c.state == "verified", t.c.deleted_at.is_(None)
            )
            .order_by(t.c.finished_at.desc().nulls_last(), t.c.id.desc())
        )
        return self._first(BackupRecord, stmt)

    def backups_for(
        self,
        database_id: str,
        states: Iterable[BackupState] | None = None,
        include_deleted: bool = False,
    ) -> list[BackupRecord]:
        """Backups of one database, newest first."""
        t = T.backup
        stmt = select(t).where(t.c.database_id == database_id)
        if states is not None:
            stmt = stmt.where(t.c.state.in_(list(states)))
        if not include_deleted:
            stmt = stmt.where(t.c.deleted_at.is_(None))
        return self._all(BackupRecord, stmt.order_by(t.c.started_at.desc(), t.c.id.desc()))

    def recent_backups(self, limit: int = 50) -> list[BackupRecord]:
        """Newest backups of every database and host first, deleted ones included."""
        t = T.backup
        return self._all(
            BackupRecord, select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)
        )

    # --- 恢复演练 restore drills ---------------------------------------------------------------
    def add_verification(
        self,
        backup_id: int,
        ok: bool,
        *,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        restore_seconds: float | None = None,
        evidence_path: str | None = None,
        details: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> int:
        t = T.backup_verification
        return self._scalar(
            insert(t)
            .values(
                backup_id=backup_id,
                ok=ok,
                started_at=started_at or func.now(),
                finished_at=finished_at or func.now(),
                restore_seconds=restore_seconds,
                evidence_path=evidence_path,
                details=dict(details or {}),
                error=error,
            )
            .returning(t.c.id)
        )

    def get_verification(self, verification_id: int) -> VerificationRecord | None:
        t = T.backup_verification
        return self._first(VerificationRecord, select(t).where(t.c.id == verification_id))

    def verifications_for(self, backup_id: int) -> list[VerificationRecord]:
        t = T.backup_verification
        stmt = (
            select(t)
            .where(t.c.backup_id == backup_id)
            .order_by(t.c.started_at.desc(), t.c.id.desc())
        )
        return self._all(VerificationRecord, stmt)

    # --- 维护 maintenance ----------------------------------------------------------------------
    def start_maintenance(
        self,
        database_id: str,
        kind: str,
        target_object: str | None = None,
        *,
        before: Mapping[str, Any] | None = None,
        backup_id: int | None = None,
        dag_run_id: str | None = None,
        proposal_id: int | None = None,
        state: str = "running",
    ) -> int:
        t = T.maintenance_operation
        return self._scalar(
            insert(t)
            .values(
                database_id=database_id,
                kind=kind,
                target_object=target_object,
                before=None if before is None else dict(before),
                backup_id=backup_id,
                dag_run_id=dag_run_id,
                proposal_id=proposal_id,
                state=state,
            )
            .returning(t.c.id)
        )

    def finish_maintenance(
        self,
        operation_id: int,
        state: str,
        *,
        after: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        t = T.maintenance_operation
        stmt = (
            update(t)
            .where(t.c.id == operation_id)
            .values(
                state=state,
                finished_at=func.now(),
                after=None if after is None else dict(after),
                error=error,
            )
        )
        self._require(stmt, f"maintenance operation {operation_id}")

    def maintenance_operations(
        self, database_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[MaintenanceRecord]:
        t = T.maintenance_operation
        stmt = select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)
        if database_id is not None:
            stmt = stmt.where(t.c.database_id == database_id)
        return self._all(
            MaintenanceRecord, stmt if since is None else stmt.where(t.c.started_at >= since)
        )

    def maintenance_for_run(self, dag_run_id: str) -> list[MaintenanceRecord]:
        """The maintenance operations of one DAG run, in the order they were recorded."""
        t = T.maintenance_operation
        return self._all(
            MaintenanceRecord, select(t).where(t.c.dag_run_id == dag_run_id).order_by(t.c.id)
        )

    # --- 性能评估 statement snapshots and tuning proposals -------------------------------------
    def add_statement_snapshot(
        self,
        database_id: str,
        statements: Sequence[Mapping[str, Any]],
        *,
        stats_reset: datetime | None = None,
        dag_run_id: str | None = None,
    ) -> int:
        t = T.statement_snapshot
        return self._scalar(
            insert(t)
            .values(
                database_id=database_id,
                statements=[dict(s) for s in statements],
                stats_reset=stats_reset,
                dag_run_id=dag_run_id,
            )
            .returning(t.c.id)
        )

    def latest_statement_snapshot(self, database_id: str) -> StatementSnapshot | None:
        t = T.statement_snapshot
        stmt = (
            select(t)
            .where(t.c.database_id == database_id)
            .order_by(t.c.taken_at.desc(), t.c.id.desc())
        )
        return self._first(StatementSnapshot, stmt)

    def propose(
        self,
        database_id: str,
        kind: str,
        object_name: str,
        definition: str,
        details: Mapping[str, Any],
    ) -> tuple[int, bool]:
        """(id, created): a new proposal, or the open one with the same definition refreshed."""
        t = T.tuning_proposal
        with self.engine.begin() as conn:
            open_id = conn.execute(
                select(t.c.id)
                .where(
                    t.c.database_id == database_id,
                    t.c.kind == kind,
                    t.c.definition == definition,
                    t.c.state.in_(("proposed", "approved")),
                )
                .with_for_update()
            ).scalar_one_or_none()
            if open_id is not None:
                conn.execute(
                    update(t)
                    .where(t.c.id == open_id)
                    .values(details=dict(details), updated_at=func.now())
                )
                return open_id, False
            new_id = conn.execute(
                insert(t)
                .values(
                    database_id=database_id,
                    kind=kind,
                    object_name=object_name,
                    definition=definition,
                    details=dict(details),
                )
                .returning(t.c.id)
            ).scalar_one()
            return new_id, True

    def get_proposal(self, proposal_id: int) -> ProposalRecord | None:
        t = T.tuning_proposal
        return self._first(ProposalRecord, select(t).where(t.c.id == proposal_id))

    def proposals(
        self,
        database_id: str | None = None,
        states: Iterable[ProposalState] | None = None,
        limit: int = 200,
    ) -> list[ProposalRecord]:
        """Proposals, newest first."""
        t = T.tuning_proposal
        stmt = select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if database_id is not None:
            stmt = stmt.where(t.c.database_id == database_id)
        if states is not None:
            stmt = stmt.where(t.c.state.in_(list(states)))
        return self._all(ProposalRecord, stmt)

    def move_proposal(
        self,
        proposal_id: int,
        allowed: Iterable[ProposalState],
        state: ProposalState,
        *,
        by: str | None = None,
        measured: Mapping[str, Any] | None = None,
    ) -> ProposalRecord:
        """Move a proposal to ``state`` if it is in one of ``allowed``; CatalogError otherwise."""
        t = T.tuning_proposal
        values: dict[str, Any] = {"state": state, "updated_at": func.now()}
        if by is not None:
            values.update(decided_by=by, decided_at=func.now())
        if measured is not None:
            values["measured"] = dict(measured)
        allowed = tuple(allowed)
        with self.engine.begin() as conn:
            row = conn.execute(
                update(t)
                .where(t.c.id == proposal_id, t.c.state.in_(allowed))
                .values(**values)
                .returning(*t.c)
            ).first()
            if row is not None:
                return ProposalRecord(**row._mapping)
            current = conn.execute(
                select(t.c.state).where(t.c.id == proposal_id)
            ).scalar_one_or_none()
        if current is None:
            raise CatalogError(f"proposal {proposal_id} does not exist")
        raise CatalogError(
            f"proposal {proposal_id} is {current!r}; {state!r} needs one of {allowed}"
        )

    # --- 变更 changes (install/upgrade/configure) ----------------------------------------------
    def create_change(
        self,
        title: str,
        requested_by: str,
        description: str | None = None,
        approved_by: str | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        kind: str | None = None,
        targets: Sequence[str] = (),
        dag_run_id: str | None = None,
    ) -> int:
        t = T.change_record
        state = "approved" if approved_by else "requested"
        return self._scalar(
            insert(t)
            .values(
                title=title,
                requested_by=requested_by,
                description=description,
                approved_by=approved_by,
                state=state,
                details=dict(details or {}),
                kind=kind,
                targets=list(targets),
                dag_run_id=dag_run_id,
            )
            .returning(t.c.id)
        )

    def get_change(self, change_id: int) -> ChangeRecord | None:
        t = T.change_record
        return self._first(ChangeRecord, select(t).where(t.c.id == change_id))

    # --- 审计 audit trail (append-only, hash-chained) -----------------------------------------
    def add_audit_event(
        self,
        actor: str,
        action: str,
        target: str | None,
        result: AuditResult,
        details: Mapping[str, Any] | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        *,
        source: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Append one event to the chain (serialised by an advisory lock; time = database clock)."""
        t = T.audit_event
        with self.engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(auditchain.CHAIN_LOCK_KEY)))
            seq, prev = _chain_tip(conn)
            row = {
                "seq": seq + 1,
                "at": conn.execute(select(func.clock_timestamp())).scalar_one(),
                "actor": actor,
                "source": source,
                "action": action,
                "target": target,
                "result": result,
                "reason": reason,
                "details": auditchain.normalise_details(details),
                "dag_id": dag_id,
                "run_id": run_id,
            }
            digest = auditchain.event_hash(prev, row)
            return conn.execute(
                insert(t).values(**row, prev_hash=prev, hash=digest).returning(t.c.id)
            ).scalar_one()

    def audit_events(
        self,
        since: datetime | None = None,
        limit: int = 100,
        *,
        action: str | None = None,
        result: AuditResult | None = None,
        actor: str | None = None,
    ) -> list[AuditEventRecord]:
        """Audit events, newest first (optionally filtered)."""
        t = T.audit_event
        stmt = select(t).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        for column, value in ((t.c.action, action), (t.c.result, result), (t.c.actor, actor)):
            if value is not None:
                stmt = stmt.where(column == value)
        return self._all(AuditEventRecord, stmt if since is None else stmt.where(t.c.at >= since))

    def audit_chain(self, after_seq: int = 0, limit: int = 5000) -> list[AuditEventRecord]:
        """Chained events in chain order, ``seq > after_seq`` (for verification and export)."""
        t = T.audit_event
        stmt = select(t).where(t.c.seq > after_seq).order_by(t.c.seq).limit(limit)
        return self._all(AuditEventRecord, stmt)

    def audit_event_at_seq(self, seq: int) -> AuditEventRecord | None:
        t = T.audit_event
        return self._first(AuditEventRecord, select(t).where(t.c.seq == seq))

    def audit_seq_range(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[int | None, int | None, int]:
        """(first seq, last seq, count) of chained events with ``since <= at < until``."""
        t = T.audit_event
        stmt = select(func.min(t.c.seq), func.max(t.c.seq), func.count()).where(
            t.c.seq.is_not(None)
        )
        if since is not None:
            stmt = stmt.where(t.c.at >= since)
        if until is not None:
            stmt = stmt.where(t.c.at < until)
        with self.engine.connect() as conn:
            first, last, count = conn.execute(stmt).one()
        return first, last, count

    def unchained_audit_events_after_chain_start(self) -> list[int]:
        """Ids of rows without a hash written after the chain began (never written by us)."""
        t = T.audit_event
        start = select(func.min(t.c.id)).where(t.c.seq.is_not(None)).scalar_subquery()
        stmt = select(t.c.id).where(t.c.seq.is_(None), t.c.id > start).order_by(t.c.id).limit(100)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def record_audit_export(self, **values: Any) -> AuditExportRecord:
        t = T.audit_export
        with self.engine.begin() as conn:
            row = conn.execute(insert(t).values(**values).returning(t)).one()
        return AuditExportRecord(**row._mapping)

    def audit_exports(self) -> list[AuditExportRecord]:
        """Every recorded export, oldest period first."""
        t = T.audit_export
        return self._all(AuditExportRecord, select(t).order_by(t.c.period_start, t.c.id))

    def prune_audit_events(self, through_seq: int, before: datetime) -> int:
        """Delete chained events ``seq <= through_seq`` older than ``before``, in ONE transaction
        (the chain then starts right after an export's head). The table's trigger allows it only
        for events a chain-verified export covers and older than the 180-day floor."""
        t = T.audit_event
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL hisops.audit_prune = 'on'"))
            return conn.execute(
                delete(t).where(t.c.seq.is_not(None), t.c.seq <= through_seq, t.c.at < before)
            ).rowcount

    # --- 安全基线 security baselines -----------------------------------------------------------
    def security_baseline(self, target_id: str, item: str) -> SecurityBaselineRecord | None:
        t = T.security_baseline
        stmt = select(t).where(t.c.target_id == target_id, t.c.item == item)
        return self._first(SecurityBaselineRecord, stmt)

    def accept_security_baseline(self, target_id: str, item: str, baseline: Any, by: str) -> None:
        """Make ``baseline`` the accepted state (first sight or an accepted drift)."""
        t = T.security_baseline
        values = {
            "baseline": baseline,
            "accepted_by": by,
            "accepted_at": func.now(),
            "drift": None,
            "drift_since": None,
            "checked_at": func.now(),
        }
        stmt = pg_insert(t).values(target_id=target_id, item=item, **values)
        with self.engine.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(index_elements=[t.c.target_id, t.c.item], set_=values)
            )

    def note_security_drift(self, target_id: str, item: str, drift: Any) -> datetime | None:
        """Record the current drift (None = none); returns since when it has been seen."""
        t = T.security_baseline
        where = (t.c.target_id == target_id, t.c.item == item)
        since = case((t.c.drift.is_(None), func.now()), else_=t.c.drift_since)
        values = (
            {"drift": None, "drift_since": None}
            if drift is None
            else {"drift": drift, "drift_since": since}
        )
        with self.engine.begin() as conn:
            return conn.execute(
                update(t)
                .where(*where)
                .values(checked_at=func.now(), **values)
                .returning(t.c.drift_since)
            ).scalar_one_or_none()

    # --- 日志读取位置 log offsets --------------------------------------------------------------
    def get_log_offset(self, host_id: str, path: str, reader: str = "") -> LogOffset | None:
        t = T.log_offset
        return self._first(
            LogOffset,
            select(t).where(t.c.host_id == host_id, t.c.reader == reader, t.c.path == path),
        )

    def log_offsets(
        self, host_id: str, reader: str, inspection_run_id: int | None = None
    ) -> dict[str, tuple[int | None, int]]:
        """path → (inode, offset) where ``reader`` stopped reading ``host_id``'s logs.

        For rows the run ``inspection_run_id`` itself advanced (a retried task), the position
        before that run: a retry reads the same lines again instead of nothing.
        """
        t = T.log_offset
        out: dict[str, tuple[int | None, int]] = {}
        for r in self._all(
            LogOffset, select(t).where(t.c.host_id == host_id, t.c.reader == reader)
        ):
            if inspection_run_id is not None and r.inspection_run_id == inspection_run_id:
                if r.prev_offset is not None:
                    out[r.path] = (r.prev_inode, r.prev_offset)
            else:
                out[r.path] = (r.inode, r.offset)
        return out

    def save_log_offsets(
        self,
        host_id: str,
        reader: str,
        inspection_run_id: int | None,
        offsets: Mapping[str, tuple[int | None, int]],
        listed: Iterable[str] | None = None,
    ) -> None:
        """Remember where reading stopped; with ``listed``, forget paths of this host/reader that
        are gone (rotated away and deleted) — except those this run itself wrote."""
        t = T.log_offset
        with self.engine.begin() as conn:
            for path, (inode, offset) in offsets.items():
                stmt = pg_insert(t).values(
                    host_id=host_id,
                    reader=reader,
                    path=path,
                    inode=inode,
                    offset=offset,
                    inspection_run_id=inspection_run_id,
                )
                same_run = t.c.inspection_run_id.is_not_distinct_from(inspection_run_id) & (
                    t.c.inspection_run_id.is_not(None)
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[t.c.host_id, t.c.reader, t.c.path],
                    set_={
                        "inode": stmt.excluded.inode,
                        "offset": stmt.excluded.offset,
                        "updated_at": func.now(),
                        "inspection_run_id": stmt.excluded.inspection_run_id,
                        "prev_inode": case((same_run, t.c.prev_inode), else_=t.c.inode),
                        "prev_offset": case((same_run, t.c.prev_offset), else_=t.c.offset),
                    },
                )
                conn.execute(stmt)
            if listed is not None:
                keep = set(listed) | set(offsets)
                gone = delete(t).where(
                    t.c.host_id == host_id, t.c.reader == reader, t.c.path.not_in(keep)
                )
                if inspection_run_id is not None:
                    gone = gone.where(t.c.inspection_run_id.is_distinct_from(inspection_run_id))
                conn.execute(gone)

    # --- 共享存储 shared storage locations ----------------------------------------------------
    def storage_location(self, name: str) -> StorageLocation | None:
        t = T.storage_location
        return self._first(StorageLocation, select(t).where(t.c.name == name))

    def claim_storage_location(
        self, name: str, storage_id: str, path: str, by: str | None
    ) -> StorageLocation:
        """Record ``storage_id`` for ``name`` unless one is recorded
        already; returns the one that is."""
        t = T.storage_location
        stmt = pg_insert(t).values(name=name, storage_id=storage_id, path=path, created_by=by)
        self._rowcount(stmt.on_conflict_do_nothing(index_elements=[t.c.name]))
        found = self.storage_location(name)
        assert found is not None
        return found

    # --- 趋势 metric samples -------------------------------------------------------------------
    def add_metric_samples(self, samples: Iterable[MetricSample]) -> int:
        """Store samples; those of an inspection run are stored once per (run, target, metric)."""
        rows = [
            {
                "target_id": s.target_id,
                "metric": s.metric,
                "value": s.value,
                "observed_at": s.observed_at,
                "inspection_run_id": s.inspection_run_id,
            }
            for s in samples
        ]
        t = T.metric_sample
        plain = [r for r in rows if r["inspection_run_id"] is None]
        per_run = list(
            {
                (r["inspection_run_id"], r["target_id"], r["metric"]): r
                for r in rows
                if r["inspection_run_id"] is not None
            }.values()
        )
        with self.engine.begin() as conn:
            if plain:
                conn.execute(insert(t), plain)
            if per_run:
                stmt = pg_insert(t)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[t.c.inspection_run_id, t.c.target_id, t.c.metric],
                    index_where=t.c.inspection_run_id.is_not(None),
                    set_={"value": stmt.excluded.value, "observed_at": stmt.excluded.observed_at},
                )
                conn.execute(stmt, per_run)
        return len(rows)

    def metric_series(
        self, target_id: str, metric: str, since: datetime | None = None
    ) -> list[MetricSample]:
        """One metric of one target, oldest first."""
        t = T.metric_sample
        stmt = select(t).where(t.c.target_id == target_id, t.c.metric == metric)
        if since is not None:
            stmt = stmt.where(t.c.observed_at >= since)
        return self._all(MetricSample, stmt.order_by(t.c.observed_at, t.c.id))

    # --- 保留清理 retention cleanup ------------------------------------------------------------
    def start_cleanup_run(self, dag_id: str, run_id: str, dry_run: bool) -> int:
        """The id of the cleanup run for this DAG run; a retried task gets the same id back."""
        t = T.cleanup_run
        stmt = pg_insert(t).values(dag_id=dag_id, run_id=run_id, dry_run=dry_run)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.dag_id, t.c.run_id],
            set_={"state": "running", "finished_at": None, "dry_run": stmt.excluded.dry_run},
        )
        return self._scalar(stmt.returning(t.c.id))

    def finish_cleanup_run(
        self,
        cleanup_run_id: int,
        state: str,
        report_path: str | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        t = T.cleanup_run
        values: dict[str, Any] = {
            "state": state,
            "finished_at": func.now(),
            "summary": dict(summary or {}),
        }
        if report_path is not None:
            values["report_path"] = report_path
        self._require(
            update(t).where(t.c.id == cleanup_run_id).values(**values),
            f"cleanup run {cleanup_run_id}",
        )

    def get_cleanup_run(self, cleanup_run_id: int) -> CleanupRunRecord | None:
        t = T.cleanup_run
        return self._first(CleanupRunRecord, select(t).where(t.c.id == cleanup_run_id))

    def recent_cleanup_runs(self, limit: int = 20) -> list[CleanupRunRecord]:
        """Newest cleanup runs first (reports list)."""
        t = T.cleanup_run
        return self._all(
            CleanupRunRecord, select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)
        )

    def add_cleanup_steps(
        self,
        cleanup_run_id: int,
        steps: Sequence[Mapping[str, Any]],
        replace_scope: str | None = None,
    ) -> None:
        """Store step results; ``replace_scope`` first removes that
        scope's earlier rows (task retry)."""
        t = T.cleanup_step
        rows = [{**dict(s), "cleanup_run_id": cleanup_run_id} for s in steps]
        with self.engine.begin() as conn:
            if replace_scope is not None:
                conn.execute(
                    delete(t).where(
                        t.c.cleanup_run_id == cleanup_run_id, t.c.scope == replace_scope
                    )
                )
            if rows:
                conn.execute(insert(t), rows)

    def cleanup_steps(self, cleanup_run_id: int) -> list[CleanupStepRecord]:
        t = T.cleanup_step
        return self._all(
            CleanupStepRecord,
            select(t).where(t.c.cleanup_run_id == cleanup_run_id).order_by(t.c.id),
        )

    def add_cleanup_files(self, cleanup_run_id: int, files: Sequence[Mapping[str, Any]]) -> int:
        """One multi-row insert for a batch of file actions
        (hisops.cleanup.results.FileAction rows)."""
        if files:
            rows = [{**dict(f), "cleanup_run_id": cleanup_run_id} for f in files]
            with self.engine.begin() as conn:
                conn.execute(insert(T.cleanup_file), rows)
        return len(files)

    def clear_cleanup_files(self, cleanup_run_id: int, host_ids: Sequence[str]) -> None:
        """Forget an earlier attempt's file rows for these hosts (a
        retried host task records anew)."""
        t = T.cleanup_file
        self._rowcount(
            delete(t).where(t.c.cleanup_run_id == cleanup_run_id, t.c.host_id.in_(list(host_ids)))
        )

    def cleanup_files(
        self, cleanup_run_id: int, outcomes: Sequence[str] | None = None, limit: int = 1000
    ) -> list[CleanupFileRecord]:
        t = T.cleanup_file
        stmt = select(t).where(t.c.cleanup_run_id == cleanup_run_id)
        if outcomes is not None:
            stmt = stmt.where(t.c.outcome.in_(list(outcomes)))
        return self._all(CleanupFileRecord, stmt.order_by(t.c.id).limit(limit))

    def rollup_metric_batch(
        self, before: datetime, tz: str, batch: int, after: tuple[datetime, int] | None = None
    ) -> PruneBatch:
        """Fold the oldest ≤ ``batch`` samples older than ``before`` into ``metric_daily`` and
        delete them, in one short transaction (rolled up and deleted together: never counted
        twice)."""
        return self._rollup(_METRIC_ROLLUP, before, tz, batch, after)

    def rollup_finding_batch(
        self, before: datetime, tz: str, batch: int, after: tuple[datetime, int] | None = None
    ) -> PruneBatch:
        """Like :meth:`rollup_metric_batch` for findings; the last finding of an unresolved
        incident stays (the O&M centre links it)."""
        return self._rollup(_FINDING_ROLLUP, before, tz, batch, after)

    def _rollup(
        self, sql: str, before: datetime, tz: str, batch: int, after: tuple[datetime, int] | None
    ) -> PruneBatch:
        far_past = datetime(1970, 1, 1, tzinfo=before.tzinfo)
        after_at, after_id = after or (far_past, 0)
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            row = conn.execute(
                text(sql),
                {
                    "before": before,
                    "tz": tz,
                    "batch": batch,
                    "after_at": after_at,
                    "after_id": after_id,
                },
            ).one()
        return PruneBatch(row.n, (row.last_at, row.last_id) if row.n else None)

    def metric_daily(
        self, target_id: str, metric: str, since: date | None = None
    ) -> list[MetricDaily]:
        t = T.metric_daily
        stmt = select(t).where(t.c.target_id == target_id, t.c.metric == metric)
        if since is not None:
            stmt = stmt.where(t.c.day >= since)
        return self._all(MetricDaily, stmt.order_by(t.c.day))

    def finding_daily(
        self, target_id: str | None = None, since: date | None = None
    ) -> list[FindingDaily]:
        t = T.finding_daily
        stmt = select(t)
        if target_id is not None:
            stmt = stmt.where(t.c.target_id == target_id)
        if since is not None:
            stmt = stmt.where(t.c.day >= since)
        return self._all(FindingDaily, stmt.order_by(t.c.day, t.c.target_id, t.c.check_id))

    def prune_resolved_incidents(self, before: datetime, batch: int) -> int:
        """Delete ≤ ``batch`` incidents resolved before ``before``; open ones are never touched."""
        t = T.incident
        ids = (
            select(t.c.id)
            .where(t.c.state == "resolved", t.c.resolved_at < before)
            .order_by(t.c.id)
            .limit(batch)
            .scalar_subquery()
        )
        return self._rowcount(delete(t).where(t.c.id.in_(ids)))

    def old_inspection_runs(self, before: datetime, limit: int) -> list[InspectionRunRecord]:
        """Finished inspection runs started before ``before`` with no findings left (rolled up)."""
        t, f = T.inspection_run, T.finding
        stmt = (
            select(t)
            .where(
                t.c.started_at < before,
                t.c.state != "running",
                ~select(f.c.id).where(f.c.inspection_run_id == t.c.id).exists(),
            )
            .order_by(t.c.id)
            .limit(limit)
        )
        return self._all(InspectionRunRecord, stmt)

    def delete_inspection_runs(self, ids: Sequence[int]) -> int:
        t, f = T.inspection_run, T.finding
        return self._rowcount(
            delete(t).where(
                t.c.id.in_(list(ids)),
                ~select(f.c.id).where(f.c.inspection_run_id == t.c.id).exists(),
            )
        )

    def old_evidence(self, before: datetime, limit: int) -> list[VerificationRecord]:
        """Restore drills older than ``before`` that still point at an evidence folder."""
        t = T.backup_verification
        stmt = (
            select(t)
            .where(t.c.started_at < before, t.c.evidence_path.is_not(None))
            .order_by(t.c.id)
            .limit(limit)
        )
        return self._all(VerificationRecord, stmt)

    def clear_evidence(self, verification_ids: Sequence[int], note: str) -> int:
        """The drill stays (the record of the restore test); its evidence path is cleared."""
        t = T.backup_verification
        stmt = (
            update(t)
            .where(t.c.id.in_(list(verification_ids)))
            .values(evidence_path=None, details=t.c.details.concat({"evidence_removed": note}))
        )
        return self._rowcount(stmt)

    def old_cleanup_runs(self, before: datetime, limit: int) -> list[CleanupRunRecord]:
        t = T.cleanup_run
        stmt = (
            select(t)
            .where(t.c.started_at < before, t.c.state != "running")
            .order_by(t.c.id)
            .limit(limit)
        )
        return self._all(CleanupRunRecord, stmt)

    def prune_cleanup_files(self, cleanup_run_id: int, batch: int) -> int:
        t = T.cleanup_file
        ids = (
            select(t.c.id)
            .where(t.c.cleanup_run_id == cleanup_run_id)
            .order_by(t.c.id)
            .limit(batch)
            .scalar_subquery()
        )
        return self._rowcount(delete(t).where(t.c.id.in_(ids)))

    def delete_cleanup_run(self, cleanup_run_id: int) -> int:
        return self._rowcount(delete(T.cleanup_run).where(T.cleanup_run.c.id == cleanup_run_id))

    def count_prunable(self, kind: str, before: datetime) -> int:
        """How many rows a prune of ``kind`` would touch now (dry run)."""
        f, i = T.finding, T.incident
        where = {
            "metric_sample": T.metric_sample.c.observed_at < before,
            "finding": (f.c.observed_at < before)
            & ~select(i.c.id)
            .where(i.c.last_finding_id == f.c.id, i.c.state != "resolved")
            .exists(),
            "incident": (i.c.state == "resolved") & (i.c.resolved_at < before),
            "audit_event": T.audit_event.c.at < before,
        }[kind]
        table = {
            "metric_sample": T.metric_sample,
            "finding": f,
            "incident": i,
            "audit_event": T.audit_event,
        }[kind]
        return self._scalar(select(func.count()).select_from(table).where(where))

    def count_audit_events_before(self, before: datetime) -> int:
        t = T.audit_event
        return self._scalar(select(func.count()).select_from(t).where(t.c.at < before))


# --- incident helpers (run inside the caller's transaction) -----------------------------------
def _chain_tip(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the chain's last event; after pruning, the newest export's head."""
    t, e = T.audit_event, T.audit_export
    last = conn.execute(
        select(t.c.seq, t.c.hash).where(t.c.seq.is_not(None)).order_by(t.c.seq.desc()).limit(1)
    ).first()
    if last is None:
        last = conn.execute(
            select(e.c.last_seq, e.c.head_hash)
            .where(e.c.last_seq.is_not(None))
            .order_by(e.c.last_seq.desc())
            .limit(1)
        ).first()
    return (last[0], last[1]) if last is not None else (0, auditchain.GENESIS)


def _finding_row(f: FindingRecord, inspection_run_id: int) -> dict[str, Any]:
    row = asdict(f)
    row.pop("id")
    row.update(inspection_run_id=inspection_run_id, details=dict(f.details))
    return row


def _replayed(conn: Connection, f: FindingRecord, finding_id: int) -> IncidentChange | None:
    """The incident this stored finding already folded into, as the change that fold made."""
    t = T.incident
    stmt = select(t).where(
        t.c.last_finding_id == finding_id, t.c.check_id == f.check_id, t.c.target_id == f.target_id
    )
    row = conn.execute(stmt.order_by(t.c.id.desc())).first()
    if row is None:
        return None
    incident = IncidentRecord(**row._mapping)
    if incident.state == "resolved":
        return IncidentChange("resolved", incident)
    return IncidentChange("opened" if incident.occurrences == 1 else "updated", incident)


def _lock_open_incident(conn: Connection, check_id: str, target_id: str) -> IncidentRecord | None:
    t = T.incident
    stmt = select(t).where(
        t.c.check_id == check_id, t.c.target_id == target_id, t.c.state != "resolved"
    )
    row = conn.execute(stmt.with_for_update()).first()
    return None if row is None else IncidentRecord(**row._mapping)


def _try_open(conn: Connection, f: FindingRecord, finding_id: int | None) -> IncidentChange | None:
    t = T.incident
    stmt = pg_insert(t).values(
        check_id=f.check_id,
        target_id=f.target_id,
        system_id=f.system_id,
        severity=f.severity,
        title_zh=f.message_zh,
        title_en=f.message_en,
        opened_at=f.observed_at,
        last_seen_at=f.observed_at,
        last_finding_id=finding_id,
    )
    stmt = stmt.on_conflict_do_nothing(
        index_elements=[t.c.check_id, t.c.target_id], index_where=t.c.state != "resolved"
    )
    row = conn.execute(stmt.returning(*t.c)).first()
    return None if row is None else IncidentChange("opened", IncidentRecord(**row._mapping))


def _touch(
    conn: Connection, current: IncidentRecord, f: FindingRecord, finding_id: int | None
) -> IncidentChange:
    t = T.incident
    severity = worse(current.severity, f.severity)
    escalated = severity != current.severity
    values: dict[str, Any] = {
        "severity": severity,
        "last_seen_at": f.observed_at,
        "occurrences": t.c.occurrences + 1,
        "last_finding_id": finding_id,
    }
    if escalated:
        values.update(title_zh=f.message_zh, title_en=f.message_en)
    row = conn.execute(update(t).where(t.c.id == current.id).values(**values).returning(*t.c)).one()
    return IncidentChange(
        "escalated" if escalated else "updated",
        IncidentRecord(**row._mapping),
        previous_severity=current.severity,
    )


def _resolve(
    conn: Connection, current: IncidentRecord, f: FindingRecord, finding_id: int | None
) -> IncidentChange:
    t = T.incident
    note = f"{f.message_zh} — {f.message_en}"
    stmt = (
        update(t)
        .where(t.c.id == current.id)
        .values(
            state="resolved",
            resolved_at=f.observed_at,
            last_finding_id=finding_id,
            resolution_note=note[:2000],
        )
    )
    row = conn.execute(stmt.returning(*t.c)).one()
    return IncidentChange(
        "resolved", IncidentRecord(**row._mapping), previous_severity=current.severity
    )


# --- roll-ups: one statement per batch (keyset on (observed_at, id), see ix_*_observed_at_id) ---
_METRIC_ROLLUP = """
WITH doomed AS (
    SELECT id, observed_at FROM hisops.metric_sample
    WHERE observed_at < :before AND (observed_at, id) > (:after_at, :after_id)
    ORDER BY observed_at, id LIMIT :batch
), gone AS (
    DELETE FROM hisops.metric_sample m USING doomed d WHERE m.id = d.id
    RETURNING m.target_id, m.metric, m.value, m.observed_at
), folded AS (
    INSERT INTO hisops.metric_daily AS t (day, target_id, metric, n, min, max, sum)
    SELECT (observed_at AT TIME ZONE :tz)::date, target_id, metric, count(*), min(value),
           max(value), sum(value)
    FROM gone GROUP BY 1, 2, 3
    ON CONFLICT (day, target_id, metric) DO UPDATE SET
        n = t.n + EXCLUDED.n, min = LEAST(t.min, EXCLUDED.min), max = GREATEST(t.max, EXCLUDED.max),
        sum = t.sum + EXCLUDED.sum
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS n,
       (SELECT max(observed_at) FROM doomed) AS last_at,
       (SELECT id FROM doomed ORDER BY observed_at DESC, id DESC LIMIT 1) AS last_id,
       (SELECT count(*) FROM folded) AS days
"""

_FINDING_ROLLUP = """
WITH doomed AS (
    SELECT f.id, f.observed_at FROM hisops.finding f
    WHERE f.observed_at < :before AND (f.observed_at, f.id) > (:after_at, :after_id)
      AND NOT EXISTS (SELECT 1 FROM hisops.incident i
                      WHERE i.last_finding_id = f.id AND i.state <> 'resolved')
    ORDER BY f.observed_at, f.id LIMIT :batch
), gone AS (
    DELETE FROM hisops.finding f USING doomed d WHERE f.id = d.id
    RETURNING f.target_kind, f.target_id, f.check_id, f.system_id, f.severity, f.value,
              f.observed_at
), folded AS (
    INSERT INTO hisops.finding_daily AS t (day, target_kind, target_id, check_id, system_id,
        n, n_ok, n_warn, n_critical, n_check_error, value_n, value_min, value_max, value_sum)
    SELECT (observed_at AT TIME ZONE :tz)::date, target_kind, target_id, check_id, max(system_id),
           count(*), count(*) FILTER (WHERE severity = 'ok'),
           count(*) FILTER (WHERE severity = 'warn'),
           count(*) FILTER (WHERE severity = 'critical'),
           count(*) FILTER (WHERE severity = 'check_error'),
           count(value), min(value), max(value), sum(value)
    FROM gone GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, target_kind, target_id, check_id) DO UPDATE SET
        system_id = COALESCE(EXCLUDED.system_id, t.system_id), n = t.n + EXCLUDED.n,
        n_ok = t.n_ok + EXCLUDED.n_ok, n_warn = t.n_warn + EXCLUDED.n_warn,
        n_critical = t.n_critical + EXCLUDED.n_critical,
        n_check_error = t.n_check_error + EXCLUDED.n_check_error,
        value_n = t.value_n + EXCLUDED.value_n,
        value_min = LEAST(t.value_min, EXCLUDED.value_min),
        value_max = GREATEST(t.value_max, EXCLUDED.value_max),
        value_sum = COALESCE(t.value_sum, 0) + COALESCE(EXCLUDED.value_sum, 0)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS n,
       (SELECT max(observed_at) FROM doomed) AS last_at,
       (SELECT id FROM doomed ORDER BY observed_at DESC, id DESC LIMIT 1) AS last_id,
       (SELECT count(*) FROM folded) AS days
"""
