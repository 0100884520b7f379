"""What kind of look at the targets a run is (run semantics), from the plain RunInfo.

An inspection can only see the present. So:

- an on-time scheduled run (and an ad-hoc manual run) is *current*: its report is dated the day
  it ran, it advances the log offsets and opens/updates/resolves incidents;
- a run for a date in the past — a backfill, a manual run with a past logical date, a scheduled
  run caught up long after its day — is *historical*: it writes the record for that day, its
  findings are marked "present state", and it changes nothing that the next current run relies
  on: no log offsets move, no incident is opened or resolved.

A scheduled (or backfilled) run is judged by when it was due (``run_after``), never by its
logical date: the cron timetable's logical date is the start of the data interval (yesterday
07:00), which made every on-time run look like a backfill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from hisops.report.timefmt import local_date

if TYPE_CHECKING:
    from hisops.runinfo import RunInfo

LATE_AFTER = timedelta(hours=2)  # due more than this long ago, on an earlier day → historical


@dataclass(frozen=True)
class RunSemantics:
    historical: bool
    #: the moment the report is for (its date); None → the time it is written
    report_for: datetime | None

    @property
    def fold_incidents(self) -> bool:
        return not self.historical

    @property
    def advance_offsets(self) -> bool:
        return not self.historical


def due_at(run: RunInfo) -> datetime | None:
    """When the run was meant to look at the targets: for timetable runs (scheduled, backfill)
    when they were due; for manual runs the logical date chosen (else when triggered)."""
    if run.is_scheduled or run.is_backfill:
        return run.run_after or run.logical_date
    return run.logical_date or run.run_after


def semantics(run: RunInfo, now: datetime, tz: str | None = None) -> RunSemantics:
    """Historical or current (see the module docstring); ``tz`` decides what 'an earlier day' is."""
    due = due_at(run)
    if run.is_backfill:
        return RunSemantics(True, due)
    if due is None or now - due <= LATE_AFTER:
        return RunSemantics(False, None)
    earlier_day = local_date(due, tz) < local_date(now, tz)
    return RunSemantics(True, due) if earlier_day else RunSemantics(False, None)
