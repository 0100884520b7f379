"""变更 change control records: the change, its steps, its state (mixin of CatalogRepository)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from hisops.catalog import tables as T
from hisops.catalog.records import ChangeRecord, ChangeStepRecord
from hisops.catalog.repository_base import Statements

if TYPE_CHECKING:
    from datetime import datetime


class ChangeSteps(Statements):
    def add_change_step(
        self,
        change_id: int,
        step: str,
        state: str,
        details: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> int:
        """One finished step of a change (state: passed, failed, refused, cancelled, skipped)."""
        t = T.change_step
        return self._scalar(
            insert(t)
            .values(
                change_id=change_id,
                step=step,
                state=state,
                details=dict(details or {}),
                started_at=started_at or func.now(),
                finished_at=func.now(),
            )
            .returning(t.c.id)
        )

    def change_steps(self, change_id: int) -> list[ChangeStepRecord]:
        t = T.change_step
        return self._all(
            ChangeStepRecord, select(t).where(t.c.change_id == change_id).order_by(t.c.id)
        )

    def set_change_state(
        self,
        change_id: int,
        state: str,
        *,
        approved_by: str | None = None,
        pre_backup_id: int | None = None,
        started: bool = False,
        failed: bool = False,
        finished: bool = False,
        incident_id: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Move a change on; the flags stamp started_at / failed_at
        (first failure) / finished_at."""
        t = T.change_record
        values: dict[str, Any] = {"state": state}
        if approved_by is not None:
            values["approved_by"] = approved_by
        if pre_backup_id is not None:
            values["pre_backup_id"] = pre_backup_id
        if started:
            values["started_at"] = func.coalesce(t.c.started_at, func.now())
        if failed:
            values["failed_at"] = func.coalesce(t.c.failed_at, func.now())
        if finished:
            values["finished_at"] = func.now()
        if incident_id is not None:
            values["incident_id"] = incident_id
        if details:
            values["details"] = t.c.details.concat(dict(details))
        self._require(update(t).where(t.c.id == change_id).values(**values), f"change {change_id}")

    def recent_changes(self, limit: int = 50) -> list[ChangeRecord]:
        t = T.change_record
        return self._all(
            ChangeRecord, select(t).order_by(t.c.requested_at.desc(), t.c.id.desc()).limit(limit)
        )
