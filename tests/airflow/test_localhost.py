"""The api-server listens on loopback only; logs the demo/suite write are private.

(The check of the running api-server is in test_roles_api.py, which has one started.)"""

from __future__ import annotations

from pathlib import Path

from hisops.devenv import demo
from hisops.devenv.airflow_env import airflow_env


def listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a LISTEN socket on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_airflow_env_binds_localhost_and_keeps_task_logs_private(tmp_path):
    env = airflow_env(tmp_path, "postgresql://x/y")
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS"] == "0o600"
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS"] == "0o700"


def test_demo_runs_no_log_server_and_binds_the_api_server_to_loopback():
    assert demo._command("scheduler")[-1] == demo._command("triggerer")[-1] == "--skip-serve-logs"
    api = demo._command("api-server")
    assert api[api.index("--host") + 1] == "127.0.0.1"
