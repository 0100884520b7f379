"""Fixtures for the backup tests: a migrated catalog, a small synthetic HIS database, throwaway
clusters."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hisops.devenv.pgcluster import PgCluster

from tests.conftest import TEST_HOME, free_port

SMALL_SCALE = 0.02  # ~2 MB: a few hundred to a few thousand rows per table


def small_his_db(pg, new_db) -> str:
    """A new database with the synthetic HIS schema and a little data; returns its name."""
    from hisops.synth.generate import generate

    name = new_db("his")
    generate(pg.dsn(name), SMALL_SCALE, seed=7, log=lambda _m: None)
    return name


@pytest.fixture
def his_db(pg, new_db) -> str:
    """A new database with the synthetic HIS schema and a little data; returns its name."""
    return small_his_db(pg, new_db)


@pytest.fixture
def throwaway_cluster() -> Iterator[PgCluster]:
    """A private cluster of its own (for tests that stop the server); destroyed afterwards."""
    cluster = PgCluster(TEST_HOME / f"pg-{uuid.uuid4().hex[:8]}", free_port())
    cluster.start()
    yield cluster
    cluster.destroy()


def backups_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@contextmanager
def tmpfs(path: Path, size: str = "1m", read_only: bool = False) -> Iterator[bool]:
    """Mount a tiny tmpfs at ``path`` (root only); yields False when mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0700" + (",ro" if read_only else "")
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
