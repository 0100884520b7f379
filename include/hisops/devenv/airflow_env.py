"""The Airflow configuration shared by the demo and the test suite (environment variables).

One place decides how a local Airflow is wired: FAB auth manager (real roles), LocalExecutor,
metadata in our private PostgreSQL, the project's dags/ and plugins/, no example DAGs. New DAGs
start paused, as in production (nothing runs on a schedule until someone unpauses it); the demo
unpauses the DAGs it runs itself.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def load_or_create_secrets(path: Path) -> dict[str, str]:
    """Secrets that every Airflow process of one deployment must share (kept 0600)."""
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {
        "api_secret": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(32),
        "fernet_key": Fernet.generate_key().decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def airflow_env(
    home: Path,
    metadata_url: str,
    *,
    api_port: int = 8080,
    inventory: Path | None = None,
    executor: str = "LocalExecutor",
) -> dict[str, str]:
    """Environment variables for every Airflow process (and CLI call) of this deployment."""
    s = load_or_create_secrets(home / "secrets.json")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",  # never every interface (the demo has no TLS)
        "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
        "AIRFLOW__API__SECRET_KEY": s["api_secret"],
        "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # task logs carry report content: private to the service user
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "1",
    }
    if inventory is not None:
        env["HISOPS_INVENTORY"] = str(inventory)
    return env
