"""Proof of the point reached: heartbeat rows and named restore points written by hisops.

A PITR drill must show it recovered to the requested point, not merely that a server started. On
the production server hisops keeps a tiny table ``hisops_pitr.heartbeat`` (in the server's
connection database) and, for a drill, writes

    marker "before" → restore point "hisops_<drill>" (pg_create_restore_point) → marker "after"

then switches WAL and waits until the archiver has the segments. Recovered to the restore point,
the copy must contain "before" and must not contain "after". For a time target chosen by ops the
proof is the same with the heartbeat rows around that time; for ``latest`` the "after" marker stays
in the unarchived segment (it must be absent: recovery replays archived WAL only).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

SCHEMA, TABLE = "hisops_pitr", "heartbeat"
DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{TABLE} "
    "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "marker text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
)


class MarkerError(RuntimeError):
    """The production server did not take or archive the markers."""


@dataclass(frozen=True)
class Marker:
    id: int
    marker: str
    at: datetime


@dataclass(frozen=True)
class Target:
    """Where recovery should stop and how to prove it did."""

    kind: str  # latest | name | time
    value: str | None  # restore point name / ISO time
    before: Marker | None  # must be in the copy
    after: Marker | None  # must NOT be in the copy

    def restore_options(self) -> list[str]:
        return restore_options(self.kind, self.value)

    def as_dict(self) -> dict[str, Any]:
        def m(x: Marker | None) -> dict[str, Any] | None:
            return None if x is None else {"id": x.id, "marker": x.marker, "at": x.at.isoformat()}

        return {
            "kind": self.kind,
            "value": self.value,
            "before": m(self.before),
            "after": m(self.after),
        }


def point_name(drill: str) -> str:
    """The restore point hisops makes for a drill."""
    return f"hisops_{drill}"


def target_value(kind: str, drill: str, value: str | None) -> str | None:
    """The restore point or time :func:`make_target` will use: known before any marker is
    written, so the restore can start while the markers are being written and archived."""
    return point_name(drill) if kind == "name" and value is None else value


def restore_options(kind: str, value: str | None) -> list[str]:
    """``pgbackrest restore`` options for a target (see :func:`target_value`)."""
    if kind == "latest":
        return ["--type=default"]
    return [f"--type={kind}", f"--target={value}", "--target-action=promote"]


def _conn(dsn: str) -> AbstractContextManager[PgConnection]:
    from hisops.targets.postgres import pg_session

    return pg_session(
        dsn,
        target="pitr-markers",
        read_only=False,
        statement_timeout_ms=30_000,
        application_name="hisops-pitr-marker",
    )


def write_marker(dsn: str, marker: str) -> Marker:
    with _conn(dsn) as conn, conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)
        cur.execute(
            f"INSERT INTO {SCHEMA}.{TABLE} (marker) VALUES (%s) RETURNING id, marker, at", (marker,)
        )
        return Marker(*cur.fetchone())


def restore_point(dsn: str, name: str) -> str:
    with _conn(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_create_restore_point(%s)::text", (name,))
        return cur.fetchone()[0]


def switch_and_wait(dsn: str, timeout: float = 120.0) -> str:
    """pg_switch_wal() and wait until the archiver archived that segment; returns its name."""
    with _conn(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_walfile_name(pg_switch_wal())")
        segment = cur.fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            cur.execute(
                "SELECT last_archived_wal, last_failed_wal, failed_count FROM pg_stat_archiver"
            )
            archived, failed, _count = cur.fetchone()
            if archived and archived[:24] >= segment:
                return segment
            if time.monotonic() > deadline:
                raise MarkerError(
                    f"WAL 段 {segment} 未在 {timeout:.0f}s 内归档 "
                    f"segment {segment} was not archived "
                    f"within {timeout:.0f}s (last archived {archived}, last failed {failed})"
                )
            time.sleep(0.5)


def make_target(dsn: str, kind: str, drill: str, value: str | None = None) -> Target:
    """Write the markers for a drill and return the target (see module doc)."""
    if kind == "name" and value is None:
        before = write_marker(dsn, f"before {drill}")
        name = point_name(drill)
        restore_point(dsn, name)
        after = write_marker(dsn, f"after {drill}")
        switch_and_wait(dsn)
        return Target("name", name, before, after)
    if kind == "latest":
        before = write_marker(dsn, f"before {drill}")
        switch_and_wait(dsn)
        after = write_marker(dsn, f"after {drill} (not archived)")
        return Target("latest", None, before, after)
    if kind == "time" and value:
        return Target("time", value, *_around(dsn, datetime.fromisoformat(value)))
    if kind == "name" and value:
        return Target("name", value, *_around_point(dsn, value))
    raise ValueError(f"unknown PITR target {kind!r}")


def _around(dsn: str, when: datetime) -> tuple[Marker | None, Marker | None]:
    """The last heartbeat at or before ``when`` and the first after it (written by earlier runs)."""
    with _conn(dsn) as conn, conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)
        cur.execute(
            f"SELECT id, marker, at FROM {SCHEMA}.{TABLE} WHERE at <= %s ORDER BY id DESC LIMIT 1",
            (when,),
        )
        before = cur.fetchone()
        cur.execute(
            f"SELECT id, marker, at FROM {SCHEMA}.{TABLE} WHERE at > %s ORDER BY id LIMIT 1",
            (when,),
        )
        after = cur.fetchone()
    return (Marker(*before) if before else None, Marker(*after) if after else None)


def _around_point(dsn: str, name: str) -> tuple[Marker | None, Marker | None]:
    """Markers around a restore point hisops created earlier (``before/after <drill>``)."""
    drill = name.removeprefix("hisops_")
    with _conn(dsn) as conn, conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)
        cur.execute(
            f"SELECT id, marker, at FROM {SCHEMA}.{TABLE} WHERE marker IN (%s, %s) ORDER BY id",
            (f"before {drill}", f"after {drill}"),
        )
        rows = {r[1].split(" ", 1)[0]: Marker(*r) for r in cur.fetchall()}
    return rows.get("before"), rows.get("after")


def heartbeat_ids(dsn: str) -> set[int] | None:
    """Heartbeat ids in a (restored) database; None when the table is not there."""
    from hisops.targets.postgres import pg_session

    with (
        pg_session(dsn, target="pitr-copy", statement_timeout_ms=30_000) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{TABLE}",))
        if not cur.fetchone()[0]:
            return None
        cur.execute(f"SELECT id FROM {SCHEMA}.{TABLE}")
        return {r[0] for r in cur.fetchall()}


def prove(target: Target, ids: set[int] | None) -> list[str]:
    """Problems with the point reached (empty = proven)."""
    problems = []
    if target.before is not None and (ids is None or target.before.id not in ids):
        problems.append(
            f"未到达目标点 target not reached: heartbeat #{target.before.id} "
            f"'{target.before.marker}' ({target.before.at.isoformat()}) is missing from the copy"
        )
    if target.after is not None and ids is not None and target.after.id in ids:
        problems.append(
            f"越过了目标点 recovered past the target: heartbeat #{target.after.id} "
            f"'{target.after.marker}' ({target.after.at.isoformat()}) is in the copy"
        )
    if target.before is None and target.after is None:
        problems.append(
            "没有可用于证明的心跳记录 no heartbeat around the target to prove the point"
        )
    return problems
