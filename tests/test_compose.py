"""docker-compose.yml / docker/Dockerfile: static checks (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
INITDB = REPO / "docker" / "initdb"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
)
LONG_RUNNING = ("postgres", "redis", *AIRFLOW_SERVICES[1:])
# ${VAR:?message} — required, no default (a default would be a literal secret)
REQUIRED_REF = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|_AUTH$")
URL_PASSWORD = re.compile(r"://[^:/@\s]*:(?P<pw>\$\{[^}]*\}|[^@\s]*)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def all_env(services: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(name, k, v) for name, svc in services.items() for k, v in env_of(svc).items()]


def test_services_present(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", *AIRFLOW_SERVICES} <= services.keys()
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_share_the_common_config(services: dict[str, Any], name: str) -> None:
    env = env_of(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert (
        env["AIRFLOW__CORE__AUTH_MANAGER"]
        == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    )
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__CORE__DEFAULT_TIMEZONE"] == "Asia/Shanghai"
    assert env["HISOPS_INVENTORY"] == "/opt/hisops/inventory/hospital.yaml"
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW_CONN_HISOPS_CATALOG"):  # fmt: skip
        assert env[key]
    assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"


def test_init_prepares_databases_roles_and_admin(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    script = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    for step in (
        "airflow db migrate",
        "hisops catalog upgrade",
        "hisops roles sync",
        "airflow users create",
    ):
        assert step in script
    assert "超级管理员" in script
    for name in AIRFLOW_SERVICES[1:]:
        assert (
            services[name]["depends_on"]["airflow-init"]["condition"]
            == "service_completed_successfully"
        )


def test_initdb_creates_both_databases(services: dict[str, Any]) -> None:
    mounts = services["postgres"]["volumes"]
    assert any(m.startswith("./docker/initdb:/docker-entrypoint-initdb.d") for m in mounts)
    sql = "\n".join(p.read_text(encoding="utf-8") for p in sorted(INITDB.glob("*.sql")))
    assert re.search(r"CREATE DATABASE airflow\b", sql) and re.search(
        r"CREATE DATABASE hisops_catalog\b", sql
    )
    assert "\\getenv" in sql and not re.search(r"PASSWORD\s+'", sql)  # passwords from the env only


def test_api_server_on_8080(services: dict[str, Any]) -> None:
    assert any(str(p).endswith(":8080") for p in services["airflow-apiserver"]["ports"])


def test_healthchecks(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), name


def test_backup_and_report_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    volumes = compose["volumes"]
    assert {"hisops-backups", "hisops-reports", "postgres-data"} <= volumes.keys()
    worker = services["airflow-worker"]["volumes"]
    assert "hisops-backups:/var/lib/hisops/backups" in worker
    assert "hisops-reports:/var/lib/hisops/reports" in worker
    assert any(v.startswith("postgres-data:") for v in services["postgres"]["volumes"])


def test_no_literal_secrets(services: dict[str, Any]) -> None:
    checked = 0
    for service, key, value in all_env(services):
        if SECRET_KEY.search(key):
            assert REQUIRED_REF.match(value), f"{service}: {key} must be ${{VAR:?…}}, not a literal"
            checked += 1
        for match in URL_PASSWORD.finditer(value):
            assert REQUIRED_REF.match(match["pw"]), f"{service}: {key} embeds a literal password"
            checked += 1
    assert checked >= 10  # the checks above really looked at something


def test_no_secret_literals_anywhere_in_the_file() -> None:
    """Also outside `environment:` (e.g. a YAML key in a block someone adds later)."""
    key_value = re.compile(
        r"^\s*(?:-\s*)?\w*(?:PASSWORD|SECRET|FERNET_KEY)\w*\s*[:=]\s*(\S.*)$", re.I
    )
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        m = key_value.match(line.split(" #", 1)[0])
        if m:
            assert m[1].startswith("${"), line


def test_dockerfile_matches_pinned_airflow() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)\s*$", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt must pin apache-airflow==X"
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^FROM\s+apache/airflow:(\S+?)-python(\S+)", dockerfile, re.M)
    assert base, "Dockerfile must start FROM apache/airflow:<version>-python<py>"
    assert base[1] == pinned[1]
    assert base[2] == "3.11"


def test_dockerfile_installs_lock_package_and_pg_client() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert "requirements-lock.txt" in dockerfile
    assert re.search(r"pip install .*--no-deps", dockerfile)
    assert "postgresql-client" in dockerfile
    for copied in ("include/", "pyproject.toml", "dags/", "plugins/"):
        assert re.search(rf"^COPY .*{re.escape(copied)}", dockerfile, re.M), copied
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users[0] == "root" and users[-1] == "airflow"  # apt as root, run as airflow


# --- Airflow 3.3's official compose file, where hisops should match it; several machines ---------
NFS_OVERRIDE = REPO / "docker" / "compose.nfs.yml"
SHARED_VOLUMES = ("hisops-backups", "hisops-reports", "airflow-logs")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_run_as_airflow_uid_group_0(services: dict[str, Any], name: str) -> None:
    assert services[name]["user"] == "${AIRFLOW_UID:-50000}:0"


def test_new_dags_start_paused_in_production(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        assert (
            env_of(services[name])["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"].lower() == "true"
        )


def test_celery_messages_of_a_dead_worker_return_in_minutes(services: dict[str, Any]) -> None:
    env = env_of(services["airflow-worker"])
    assert 60 <= int(env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"]) <= 900
    assert env["AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER"] == "1"
    assert int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]) <= 600
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")


def test_worker_scales_out(services: dict[str, Any]) -> None:
    """`--scale airflow-worker=N`: nothing that pins one container (name, hostname, host port)."""
    worker = services["airflow-worker"]
    assert not {"container_name", "hostname", "ports"} & worker.keys()
    assert worker["command"] == "celery worker"
    assert env_of(worker)["DUMB_INIT_SETSID"] == "0"  # warm shutdown, as the official file


def test_connections_every_worker_reaches(services: dict[str, Any]) -> None:
    env = env_of(services["airflow-worker"])
    assert env["AIRFLOW_CONN_HISOPS_AIRFLOW_DB"].startswith("postgres://airflow:")
    assert env["AIRFLOW_CONN_HISOPS_AIRFLOW_DB"].endswith("@postgres:5432/airflow")
    assert REQUIRED_REF.match(env["AIRFLOW_CONN_HISOPS_SMTP"])  # the hospital's relay, from .env
    assert "localhost" not in env["AIRFLOW_CONN_HISOPS_SMTP"]


def test_shared_volumes_mounted_where_read_and_written(services: dict[str, Any]) -> None:
    def mounts(name: str) -> set[str]:
        return {v.split(":", 1)[0] for v in services[name]["volumes"]}

    assert set(SHARED_VOLUMES) <= mounts("airflow-worker")
    assert {"hisops-reports", "airflow-logs"} <= mounts("airflow-apiserver")  # serves reports, logs


def test_nfs_override_shares_every_storage_volume(compose: dict[str, Any]) -> None:
    override = yaml.safe_load(NFS_OVERRIDE.read_text(encoding="utf-8"))["volumes"]
    for name in SHARED_VOLUMES:
        assert name in compose["volumes"]
        opts = override[name]["driver_opts"]
        assert opts["type"] == "nfs" and "addr=${HISOPS_NFS_SERVER:?" in opts["o"], name
        assert opts["device"].startswith(":")
    assert "compose.nfs.yml" in COMPOSE.read_text(encoding="utf-8")


def test_env_template_names_every_required_variable() -> None:
    """docker/README.md's .env template lists every ${VAR:?} the compose files require."""
    text = "\n".join(
        line.split("#", 1)[0]
        for path in (COMPOSE, NFS_OVERRIDE)
        for line in path.read_text(encoding="utf-8").splitlines()
    )
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    readme = (REPO / "docker" / "README.md").read_text(encoding="utf-8")
    missing = sorted(v for v in required if not re.search(rf"^{v}=", readme, re.M))
    assert not missing, missing
