"""The locked Celery stack works with the Celery provider: what the executor and the worker
healthcheck import, and the result backend URL of docker-compose.yml, against a real PostgreSQL."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid

import yaml

from tests.test_compose import COMPOSE, DOCKERFILE, env_of

EXECUTOR_UTILS = "airflow.providers.celery.executors.celery_executor_utils"


def _compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]


def _import_in_fresh_python(code: str, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]  # (Airflow may log to stdout before)


def test_executor_utils_import_in_the_venv() -> None:
    """celery 5.7.0 removed celery.backends.database.retry, which this module imports."""
    out = _import_in_fresh_python(f"import {EXECUTOR_UTILS} as m; print(type(m.app).__name__)")
    assert out.strip().endswith("Celery")


def test_worker_healthcheck_app_imports() -> None:
    """The exact `--app` of the compose worker healthcheck resolves in this venv."""
    test = _compose_services()["airflow-worker"]["healthcheck"]["test"]
    argv = shlex.split(test[-1] if isinstance(test, list) else test)
    app = argv[argv.index("--app") + 1]
    module, attr = app.rsplit(".", 1)
    out = _import_in_fresh_python(
        f"import importlib, sys; m = importlib.import_module({module!r}); "
        f"print(type(getattr(m, {attr!r})).__name__, {EXECUTOR_UTILS!r} in sys.modules)"
    )
    assert out.split() == ["Celery", "True"]


def test_dockerfile_build_check_imports_the_executor_module() -> None:
    checks = re.findall(r'python -c "([^"]+)"', DOCKERFILE.read_text(encoding="utf-8"))
    assert any(EXECUTOR_UTILS in c for c in checks), checks


def test_result_backend_names_an_installed_driver(pg) -> None:
    """The compose result backend's scheme, with the suite's cluster, stores and reads a result."""
    url = env_of(_compose_services()["airflow-worker"])["AIRFLOW__CELERY__RESULT_BACKEND"]
    scheme = url.split("://", 1)[0]
    assert scheme == "db+postgresql+psycopg2", (
        scheme
    )  # SQLAlchemy 2 defaults to psycopg 3 otherwise
    dbname = f"celery_{uuid.uuid4().hex[:8]}"
    pg.create_database(dbname)
    try:
        ours = f"{scheme}://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{dbname}"
        code = (
            "from celery import Celery\n"
            f"app = Celery(broker='memory://', backend={ours!r})\n"
            "app.backend.store_result('t-1', 42, 'SUCCESS')\n"
            "print(app.backend.get_task_meta('t-1')['result'])\n"
        )
        assert _import_in_fresh_python(code).strip() == "42"
    finally:
        pg.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
