"""A real Airflow stack on CeleryExecutor for the long scenario: loopback Redis (a private database
number), the suite's private PostgreSQL (own metadata DB and catalog), api-server, scheduler,
dag-processor and TWO Celery workers with distinct node names, all as separate processes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hisops.devenv.airflow_env import airflow_env

from tests.conftest import REPO, Mailbox, free_port, pg_conn_json

REDIS_PORT = 6379
# As the machine notes say: loopback only, no persistence.
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    str(REDIS_PORT),
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
WORKERS = ("hisops-w1", "hisops-w2")
HEARTBEAT_TIMEOUT = 30  # s: a try whose worker died is failed this long after its last heartbeat
VISIBILITY_TIMEOUT = 60  # s: a dead worker's unacknowledged message returns to the queue


def _redis_ping(db: int = 0) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=db, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A private database number on the machine's loopback Redis
    (started when it is not running)."""
    import redis

    if not _redis_ping():
        if not shutil.which("redis-server"):
            pytest.fail(
                "Redis is not running on 127.0.0.1:6379 and redis-server is not installed "
                "(scripts/bootstrap.sh installs it)"
            )
        for folder in ("/var/lib/redis", "/var/log/redis"):
            Path(folder).mkdir(parents=True, exist_ok=True)
        subprocess.run(REDIS_START, check=True)
        deadline = time.monotonic() + 20
        while not _redis_ping():
            assert time.monotonic() < deadline, "redis-server did not answer on 127.0.0.1:6379"
            time.sleep(0.2)
    db = 8 + os.getpid() % 8  # 8..15: away from 0 (whatever else uses this Redis)
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=db)
    client.flushdb()
    yield db
    client.flushdb()


@dataclass
class Stack:
    """The running stack: REST access as admin, process handles, where things are."""

    base: str
    token: str
    home: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def api(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base}{path}",
            json=body,
            timeout=60,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def wait(
        self, what: str, probe: Callable[[], object], timeout: float, every: float = 2
    ) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.home}"
                )
            for name, proc in self.procs.items():
                assert proc.poll() is None or name.startswith("worker"), (
                    f"{name} died, see {self.home}"
                )
            time.sleep(every)

    def unpause(self, dag_id: str) -> None:
        self.wait(
            f"{dag_id} parsed",
            lambda: self.api("GET", f"/api/v2/dags/{dag_id}").status_code == 200,
            240,
        )
        resp = self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert resp.status_code == 200, resp.text

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.unpause(dag_id)
        resp = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        assert resp.status_code in (200, 201), resp.text
        return resp.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]

    def finish(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        def done() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        return str(self.wait(f"{dag_id} {run_id}", done, timeout))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        resp = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")
        return resp.json()["task_instances"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100").json()["dag_runs"]

    def worker_pid(self, node: str) -> int:
        return self.procs[f"worker-{node}"].pid

    def log(self, name: str) -> str:
        return (self.home / "logs-proc" / f"{name}.log").read_text(errors="replace")


def inventory_text(tmp: Path, mail_conn: str) -> str:
    return textwrap.dedent(f"""\
        version: 1
        hospital: 测试医院 (Celery)
        timezone: Asia/Shanghai
        maintenance_window: {{start: "01:00", end: "05:00"}}
        backup_storage: {{path: {tmp}/shared/backups}}
        reports: {{path: {tmp}/shared/reports}}
        notifications:
          - name: 信息科主管
            kind: email
            conn_id: {mail_conn}
            to: [supervisor@hospital.example]
        systems:
          - id: emr
            name: 病案管理系统
            name_en: Medical records
            databases:
              - id: d1
                conn_id: cel_db
                critical_tables: [patient]
                backup: {{keep_daily: 3, keep_weekly: 0, keep_monthly: 0, jobs: 2, compress: 1}}
            hosts: [{{id: h1, ssh_conn_id: cel_ssh, disk_paths: ["/"]}}]
        """)


def _base_env() -> dict[str, str]:
    """This process's environment without the suite's own Airflow/hisops settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HISOPS_"))}


def stack_env(
    pg, home: Path, redis_db: int, conns: dict[str, str], inventory: Path, api_port: int
) -> dict[str, str]:
    metadata = f"af_celery_{secrets.token_hex(4)}"
    pg.create_database(metadata)
    env = _base_env()
    env.update(
        airflow_env(
            home,
            pg.sqlalchemy_url(metadata),
            api_port=api_port,
            inventory=inventory,
            executor="CeleryExecutor",
        )
    )
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg.user}:{pg.password}@{pg.host}:"
            f"{pg.port}/{metadata}",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CELERY__WORKER_ENABLE_REMOTE_CONTROL": "True",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
    )
    env.update({f"AIRFLOW_CONN_{k.upper()}": v for k, v in conns.items()})
    return env


def _bootstrap(env: dict[str, str], password: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )
    script = (
        "import sys\n"
        "from hisops.airflow.roles import sync_roles, ensure_user\n"
        "from hisops.airflow.pools import ensure_pools\n"
        "sync_roles(); ensure_pools(); ensure_user('admin', '超级管理员', sys.argv[1])\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, password],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def _start(stack: Stack, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    logs = stack.home / "logs-proc"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{name}.log").open("ab")
    stack.procs[name] = subprocess.Popen(
        [sys.executable, "-m", "airflow", *argv],
        env=env or stack.env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_worker(stack: Stack, node: str) -> None:
    """One Celery worker (node ``node@<host>``); its tasks record ``node`` as the TI's hostname."""
    env = {
        **stack.env,
        "HISOPS_TEST_NODE": node,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.celery.nodename.hostname",
    }
    _start(
        stack,
        f"worker-{node}",
        [
            "celery",
            "worker",
            "--celery-hostname",
            f"{node}@%h",
            "--skip-serve-logs",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
    )


def stop_all(stack: Stack) -> None:
    for proc in stack.procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in stack.procs.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def kill_process_group_leftovers(stack: Stack) -> None:
    """Orphaned task processes of a SIGKILLed worker stay in its session: end them too."""
    for proc in stack.procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def celery_mailbox() -> Iterator[Mailbox]:
    """A real SMTP receiver for the whole scenario (the report mail, alerts)."""
    from aiosmtpd.controller import Controller

    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def celery_stack(pg, sshd, celery_mailbox, redis_db, tmp_path_factory) -> Iterator[Stack]:
    from hisops.catalog.migrate import upgrade

    from tests.verify.conftest import make_his_db

    mailbox, tmp_path = celery_mailbox, tmp_path_factory.mktemp("celery")

    catalog_db, his_db = f"cat_celery_{secrets.token_hex(4)}", f"his_celery_{secrets.token_hex(4)}"
    pg.create_database(catalog_db)
    upgrade(pg.sqlalchemy_url(catalog_db))
    make_his_db(pg, his_db)
    smtp = json.dumps(
        {
            "conn_type": "smtp",
            "host": mailbox.host,
            "port": mailbox.port,
            "extra": {
                "from_email": "hisops@hospital.example",
                "disable_tls": True,
                "disable_ssl": True,
            },
        }
    )
    ssh = json.dumps(
        {
            "conn_type": "ssh",
            "host": sshd.host,
            "port": sshd.port,
            "login": sshd.user,
            "extra": {"key_file": str(sshd.client_key), "conn_timeout": 5},
        }
    )
    # hisops_catalog lives in the metadata database, as an ops team adds it in the UI (the audit
    # listener resolves it inside the scheduler); the others come from the environment
    catalog_conn = pg_conn_json(pg, catalog_db)
    conns = {
        "cel_db": pg_conn_json(pg, his_db),
        "cel_ssh": ssh,
        "cel_smtp": smtp,
    }
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(tmp_path, "cel_smtp"))
    home, port, password = tmp_path / "airflow", free_port(), secrets.token_urlsafe(12)
    stack = Stack(
        f"http://127.0.0.1:{port}", "", home, stack_env(pg, home, redis_db, conns, inventory, port)
    )
    stack.env["HISOPS_TEST_CATALOG_URL"] = pg.sqlalchemy_url(catalog_db)
    stack.env["HISOPS_TEST_HIS_DB"] = his_db
    stack.env["HISOPS_TEST_STORAGE"] = str(tmp_path / "shared" / "backups")
    _bootstrap(stack.env, password)
    subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "add", "hisops_catalog"]
        + ["--conn-json", catalog_conn],
        env=stack.env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    try:
        _start(stack, "api-server", ["api-server", "--port", str(port), "--workers", "1"])
        _start(stack, "scheduler", ["scheduler"])
        _start(stack, "dag-processor", ["dag-processor"])
        for node in WORKERS:
            start_worker(stack, node)

        def healthy() -> bool:
            try:
                return (
                    httpx.get(f"{stack.base}/api/v2/monitor/health", timeout=5).status_code == 200
                )
            except httpx.HTTPError:
                return False

        stack.wait("the api-server", healthy, 240)
        resp = httpx.post(
            f"{stack.base}/auth/token", json={"username": "admin", "password": password}, timeout=60
        )
        assert resp.status_code == 201, resp.text
        stack.token = resp.json()["access_token"]
        yield stack
    finally:
        stop_all(stack)
        kill_process_group_leftovers(stack)
