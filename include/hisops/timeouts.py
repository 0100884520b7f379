"""Durations that a DAG and a domain rule must agree on, defined once.

A task's ``execution_timeout`` bounds how long a backup may stay ``running``; the domain rule that
fails rows left ``running`` by a dead worker must wait longer than that, or it would fail a backup
still in progress. DAG files import the task timeouts, the domain modules the stale limits, and
``tests/test_timeouts.py`` checks the two against each other. Import-free (parse-time cheap).
"""

from __future__ import annotations

from datetime import timedelta

#: db_backup: one database's pg_dump task, and its off-site copy
DB_BACKUP_TASK = timedelta(hours=6)
#: file_backup: one host's archive task, and its off-site copy
FILE_BACKUP_TASK = timedelta(hours=4)
#: pitr_backup: one server's pgBackRest backup
PITR_BACKUP_TASK = timedelta(hours=8)

#: a logical/file backup row still ``running`` this long (and without a work directory) is dead
STALE_BACKUP = timedelta(hours=12)
#: a physical backup row still ``running`` this long at the start of a pitr_backup run is dead
STALE_PITR_BACKUP = timedelta(hours=12)


def hours(duration: timedelta) -> int:
    """Whole hours of ``duration`` (for messages such as "still running after 12 h")."""
    return int(duration / timedelta(hours=1))
