"""Shared fixtures: a real private PostgreSQL cluster, a real sshd on loopback, real Airflow.

Everything is started by the suite itself (nothing needs to be running beforehand) in
``.hisops-test/`` under the repository, on ports of its own. The cluster starts in
``pytest_configure`` because Airflow reads its configuration (metadata database URL) from
the environment when it is first imported.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hisops.devenv.airflow_env import airflow_env
from hisops.devenv.pgcluster import PgCluster
from hisops.devenv.sshd import LoopbackSshd

REPO = Path(__file__).resolve().parents[1]
TEST_ROOT = Path(os.environ.get("HISOPS_TEST_HOME", REPO / ".hisops-test"))
TEST_HOME = (
    TEST_ROOT / f"run-{os.getpid()}"
)  # one folder per pytest process: parallel runs never collide


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CLUSTER = PgCluster(TEST_HOME / "pg", int(os.environ.get("HISOPS_TEST_PG_PORT") or free_port()))
AIRFLOW_API_PORT = int(os.environ.get("HISOPS_TEST_API_PORT") or free_port())


def pg_conn_json(pg: PgCluster, dbname: str, password: str | None = None) -> str:
    """An Airflow connection (AIRFLOW_CONN_* JSON) to a database of the test cluster."""
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": pg.host,
            "port": pg.port,
            "login": pg.user,
            "password": password or pg.password,
            "schema": dbname,
        }
    )


FROM_EMAIL = "hisops@hospital.example"


@dataclass
class Mailbox:
    """A real SMTP receiver's inbox (aiosmtpd handler): parsed messages and raw text."""

    host: str
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.raw.append(envelope.original_content.decode("utf-8", "replace"))
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 OK"

    def subjects(self, prefix: str) -> list[str]:
        return [str(m["subject"]) for m in self.messages if str(m["subject"]).startswith(prefix)]

    def channel(self, name: str, min_severity: str, to: str) -> Any:
        """An e-mail notification Channel that delivers into this mailbox."""
        from hisops.notify import Channel, build_apprise_url

        url = build_apprise_url(
            "email",
            host=self.host,
            port=self.port,
            login=None,
            password=None,
            extra={"disable_ssl": True, "disable_tls": True, "from_email": FROM_EMAIL},
            to=[to],
        )
        return Channel(name, "email", url, min_severity)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 collecting what is sent to it."""
    from aiosmtpd.controller import Controller

    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    yield box
    controller.stop()


def _remove_stale_runs() -> None:
    """Stop clusters / sshd left behind by killed pytest processes and delete their folders."""
    for folder in TEST_ROOT.glob("run-*"):
        pid = int(folder.name.split("-", 1)[1])
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        LoopbackSshd(folder / "sshd", 0).stop()
        PgCluster(folder / "pg", 0).destroy()
        shutil.rmtree(folder, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # never under xdist workers twice
        return
    _remove_stale_runs()
    _CLUSTER.start()
    _CLUSTER.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _CLUSTER.create_database("airflow")
    env = airflow_env(
        TEST_HOME / "airflow",
        _CLUSTER.sqlalchemy_url("airflow"),
        api_port=AIRFLOW_API_PORT,
        inventory=REPO / "inventory" / "hospital.example.yaml",
    )
    os.environ.update(env)


def pytest_unconfigure(config: pytest.Config) -> None:
    if (
        "airflow.settings" in sys.modules
    ):  # close Airflow's pooled connections before the server goes
        sys.modules["airflow.settings"].dispose_orm()
    if os.environ.get("HISOPS_TEST_KEEP") != "1":
        _CLUSTER.destroy()
        shutil.rmtree(TEST_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def pg() -> PgCluster:
    """The session's private PostgreSQL cluster (superuser password in pg.password)."""
    return _CLUSTER


@pytest.fixture
def new_db(pg: PgCluster):
    """Factory: a new, empty database with a unique name; dropped after the test."""
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        pg.create_database(name)
        created.append(name)
        return name

    yield make
    for name in created:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def catalog(pg, new_db):
    """A migrated ops catalog in a fresh database (a CatalogRepository)."""
    from hisops.catalog.migrate import upgrade
    from hisops.catalog.repository import CatalogRepository

    name = new_db("catalog")
    upgrade(pg.sqlalchemy_url(name))
    repo = CatalogRepository.from_url(pg.sqlalchemy_url(name))
    yield repo
    repo.dispose()


@pytest.fixture(scope="session")
def sshd() -> Iterator[LoopbackSshd]:
    """A real OpenSSH server on 127.0.0.1 accepting a throwaway key for the current user."""
    server = LoopbackSshd(
        TEST_HOME / "sshd", int(os.environ.get("HISOPS_TEST_SSH_PORT") or free_port())
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_db(pg: PgCluster) -> str:
    """The Airflow metadata database, migrated, with the five hisops roles."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from hisops.airflow.roles import sync_roles

    sync_roles()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
