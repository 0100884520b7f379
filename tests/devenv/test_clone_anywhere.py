"""Clone anywhere: the private cluster works when the checkout's parent is 0700 (root's home)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg2
import pytest
from hisops.devenv.pgcluster import PgCluster

from tests.conftest import REPO, free_port


def _private_parent(tmp_path: Path) -> Path:
    parent = tmp_path / "home"
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)
    return parent


def test_cluster_starts_from_a_0700_parent(tmp_path: Path) -> None:
    cluster = PgCluster(_private_parent(tmp_path) / "checkout" / ".demo" / "pg", free_port())
    try:
        cluster.start()
        with psycopg2.connect(cluster.dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            assert Path(cur.fetchone()[0]) == cluster.datadir
        conn.close()
        if os.geteuid() == 0:  # the server runs as postgres: its files are outside the checkout
            assert (cluster.root / "data").is_symlink()
            assert cluster.server_dir == cluster.outside_dir()
            assert stat.S_IMODE(cluster.server_dir.stat().st_mode) == 0o700
        cluster.stop()
        assert not cluster.running()
        cluster.start()  # a second start finds the same data through the recorded link
        assert cluster.running()
    finally:
        server_dir = cluster.server_dir
        cluster.destroy()
    assert not cluster.root.exists() and not server_dir.exists()


def test_a_new_clone_at_the_same_path_replaces_the_orphaned_cluster(tmp_path: Path) -> None:
    """Checkout deleted and cloned again at the same path: its old outside cluster is stale."""
    root = _private_parent(tmp_path) / "checkout" / ".demo" / "pg"
    old = PgCluster(root, free_port())
    new = PgCluster(root, free_port())
    try:
        old.start()
        old_dir = old.server_dir
        beside = old_dir / "pgbackrest" / "repo"  # the demo keeps its repository beside it
        beside.mkdir(parents=True)
        shutil.rmtree(root.parent.parent)  # `rm -rf checkout` while the server still runs
        new.start()
        if os.geteuid() == 0:
            assert not beside.exists()  # the old cluster's repository would not match the new
        with psycopg2.connect(new.dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()
        if os.geteuid() == 0:
            assert new.server_dir == old_dir  # same folder, a fresh cluster in it
    finally:
        new.destroy()


@pytest.mark.long
def test_test_sh_from_a_clone_in_a_0700_home(tmp_path: Path) -> None:
    """`./test.sh` of a fresh clone inside a 0700 directory (the venv is shared: keeps it short)."""
    clone = _private_parent(tmp_path) / "hisops"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
    lock = hashlib.sha256(
        (clone / "requirements-lock.txt").read_bytes() + (clone / "pyproject.toml").read_bytes()
    ).hexdigest()
    if (REPO / ".venv" / ".hisops-lock.sha256").read_text().strip() != lock:
        pytest.skip("commit the lock/pyproject first: the clone shares this checkout's .venv")
    (clone / ".venv").symlink_to(REPO / ".venv")  # same lock stamp: bootstrap installs nothing
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HISOPS_"))}
    proc = subprocess.run(
        ["./test.sh", "tests/targets/test_postgres.py", "-q", "-p", "no:cacheprovider"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
    shutil.rmtree(clone, ignore_errors=True)
