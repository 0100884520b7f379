"""Shared fixtures: a real private PostgreSQL cluster and a real sshd on loopback.

Both are started by the suite itself (nothing needs to be running beforehand) in
``.hisops-test/`` under the repository, on ports of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hisops.devenv.pgcluster import PgCluster
from hisops.devenv.sshd import LoopbackSshd

REPO = Path(__file__).resolve().parents[1]
TEST_HOME = Path(os.environ.get("HISOPS_TEST_HOME", REPO / ".hisops-test"))


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """A fresh private PostgreSQL cluster for the whole session."""
    cluster = PgCluster(TEST_HOME / "pg", int(os.environ.get("HISOPS_TEST_PG_PORT", "55433")))
    cluster.destroy()  # leftovers of an earlier, killed session
    cluster.start()
    cluster.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    yield cluster
    cluster.destroy()


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


@pytest.fixture(scope="session")
def sshd() -> Iterator[LoopbackSshd]:
    """A real OpenSSH server on 127.0.0.1 accepting a throwaway key for the current user."""
    server = LoopbackSshd(TEST_HOME / "sshd", int(os.environ.get("HISOPS_TEST_SSH_PORT", "22522")))
    server.stop()
    server.start()
    yield server
    server.stop()
