"""Planned restart of a PostgreSQL server for a configuration change whose parameter only takes
effect at a restart (``pending_restart`` in ``pg_settings``).

The restart runs ``pg_ctl restart -m fast -w`` of the target server on the server's host, through
the host's command runner, as the OS user that owns the data directory (directly, by ``runuser``
when the runner is root, else ``sudo -n -u``). Before it, the inventory's ``data_directory`` must
be the directory the server itself reports (``SHOW data_directory``): hisops never restarts a
server it cannot prove is the one the change was assessed on. Nothing here raises for a failed
step; the caller records the :class:`StepResult`.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any

from hisops.change.results import StepResult, failed, first_line, passed
from hisops.targets.errors import TargetUnreachable

if TYPE_CHECKING:
    from hisops.change.request import ChangeRequest
    from hisops.inventory.models import PgServer
    from hisops.targets.runner import CommandRunner

STEP = "restart"
PG_CTL_TIMEOUT_S = 300  # pg_ctl -t: how long a shutdown checkpoint + start may take
RELOAD_WAIT_S = 10.0  # the postmaster applies pg_reload_conf() asynchronously
READY_WAIT_S = 60.0
#: where pg_ctl sends the restarted server's stderr (the data directory's usual log folder)
RESTART_LOG = "log/hisops-pg_ctl-restart.log"


def _session(dsn: str, target: str) -> Any:
    from hisops.targets.postgres import pg_session

    return pg_session(dsn, target=target, read_only=True, application_name="hisops-change")


def pending_restart(dsn: str, parameter: str, target: str, wait_s: float = RELOAD_WAIT_S) -> bool:
    """Does ``parameter`` wait for a restart after the reload? Asked in new sessions until the
    postmaster has processed the reload (or ``wait_s`` passed: then it does not)."""
    deadline = time.monotonic() + wait_s
    while True:
        with _session(dsn, target) as conn, conn.cursor() as cur:
            cur.execute("SELECT pending_restart FROM pg_settings WHERE name = %s", (parameter,))
            row = cur.fetchone()
        if row and row[0]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def _server_facts(dsn: str, target: str) -> dict[str, Any]:
    with _session(dsn, target) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('data_directory'), current_setting('server_version_num')::int,"
            " pg_postmaster_start_time()::text"
        )
        data_directory, version_num, started = cur.fetchone()
    return {
        "data_directory": data_directory,
        "major": version_num // 10000,
        "postmaster_start_time": started,
    }


def restart_script(inventory_dir: str, server_dir: str, pg_bindir: str | None, major: int) -> str:
    """One POSIX sh script for the server's host: same data directory, pg_ctl found, restarted."""
    candidates = (
        [f"{pg_bindir.rstrip('/')}/pg_ctl"]
        if pg_bindir
        else [f"/usr/lib/postgresql/{major}/bin/pg_ctl", f"/usr/pgsql-{major}/bin/pg_ctl"]
    )
    q = shlex.quote
    # run as the data directory's owner: $1 = data directory, $2 = pg_ctl
    as_owner = (
        f'mkdir -p "$1/log" && "$2" restart -D "$1" -m fast -w -t {PG_CTL_TIMEOUT_S} '
        f'-l "$1/{RESTART_LOG}" </dev/null'
    )
    return "\n".join(
        [
            "set -u",
            f"D=$(readlink -f {q(inventory_dir)}) || exit 3",
            f'[ "$D" = "$(readlink -f {q(server_dir)})" ] || '
            '{ echo "data directory mismatch: $D" >&2; exit 3; }',
            "PGCTL=",
            f"for c in {' '.join(q(c) for c in candidates)}; do",
            '  [ -x "$c" ] && { PGCTL=$c; break; }',
            "done",
            *([] if pg_bindir else ['[ -n "$PGCTL" ] || PGCTL=$(command -v pg_ctl) || true']),
            '[ -n "$PGCTL" ] || { echo "pg_ctl not found" >&2; exit 4; }',
            'OWNER=$(stat -c %U "$D") || exit 3',
            f"SCRIPT={q(as_owner)}",
            'if [ "$(id -un)" = "$OWNER" ]; then sh -c "$SCRIPT" sh "$D" "$PGCTL"',
            'elif [ "$(id -u)" = 0 ]; then runuser -u "$OWNER" -- sh -c "$SCRIPT" sh "$D" "$PGCTL"',
            'else sudo -n -u "$OWNER" sh -c "$SCRIPT" sh "$D" "$PGCTL"',
            "fi",
        ]
    )


def _wait_ready(dsn: str, target: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + READY_WAIT_S
    while True:
        try:
            return _server_facts(dsn, target)
        except TargetUnreachable:
            if time.monotonic() > deadline:
                return None
            time.sleep(1)


def planned_restart(
    runner: CommandRunner, dsn: str, server: PgServer, request: ChangeRequest
) -> StepResult:
    """Restart the server of ``request``'s database inside the window (the caller checked it)."""
    target = request.database_id or server.id
    try:
        before = _server_facts(dsn, target)
    except TargetUnreachable as exc:
        return failed(STEP, f"无法连接数据库：{exc.reason}", f"database unreachable: {exc.reason}")
    script = restart_script(
        server.data_directory, before["data_directory"], server.pg_bindir, before["major"]
    )
    started = time.monotonic()
    result = runner.run(script, timeout=PG_CTL_TIMEOUT_S + 60)
    details: dict[str, Any] = {
        "server": server.id,
        "data_directory": before["data_directory"],
        "command": f"pg_ctl restart -D {before['data_directory']} -m fast -w",
        "exit_code": result.rc,
        "output": (result.stdout + result.stderr).strip()[-2000:],
        "seconds": round(time.monotonic() - started, 1),
        "postmaster_start_before": before["postmaster_start_time"],
    }
    if not result.ok:
        return failed(
            STEP,
            f"计划重启失败：{first_line(result.stderr or result.stdout)}",
            f"planned restart failed: {first_line(result.stderr or result.stdout)}",
            **details,
        )
    after = _wait_ready(dsn, target)
    if after is None:
        return failed(
            STEP,
            f"重启后 {READY_WAIT_S:.0f} 秒内数据库未恢复连接",
            f"the server did not accept connections within {READY_WAIT_S:.0f} s of the restart",
            **details,
        )
    details["postmaster_start_after"] = after["postmaster_start_time"]
    return passed(
        STEP,
        f"已在维护窗口内重启服务器 {server.id}（pg_ctl restart，{details['seconds']} 秒）",
        f"server {server.id} restarted in the window (pg_ctl restart, {details['seconds']} s)",
        restarted=True,
        **details,
    )


def not_restarted(reason_zh: str, reason_en: str, **details: Any) -> StepResult:
    """The parameter waits for a restart hisops did not do: recorded as pending restart."""
    return passed(
        STEP,
        f"未重启：{reason_zh}；新值待重启后生效",
        f"not restarted: {reason_en}; the new value takes effect at the next restart",
        restarted=False,
        pending_restart=True,
        **details,
    )
