"""A private cluster that archives WAL to a pgBackRest repository of its own (PITR tests)."""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hisops.devenv.pgcluster import PgCluster
from hisops.inventory.models import Database, PgServer, Pitr, PitrRepo
from hisops.pitr import config as pitr_config
from hisops.pitr.drill import PitrDrillRequest
from hisops.pitr.pgbackrest import PgBackRest

from tests.conftest import TEST_HOME, free_port


@dataclass
class PitrEnv:
    cluster: PgCluster
    server: PgServer
    pgbr: PgBackRest
    root: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return self.cluster.dsn(dbname)


def pitr_server(root: Path, cluster: PgCluster, stanza: str) -> PgServer:
    pitr = Pitr(
        stanza=stanza,
        repo=PitrRepo(path=str(root / "repo")),
        config_path=str(root / "conf" / "pgbackrest.conf"),
        os_user=cluster.os_user,
        socket_dir=str(cluster.socket_dir),
        process_max=2,
    )
    return PgServer(
        id="pg-main",
        conn_id="t_pitr",
        data_directory=str(cluster.datadir),
        port=cluster.port,
        pitr=pitr,
    )


def drill_request(
    env: PitrEnv,
    backup_id: int,
    label: str,
    evidence_root: Path,
    databases: tuple[tuple[Database, str], ...] = (),
) -> PitrDrillRequest:
    """A PITR drill of one of ``env``'s backups, scratch beside the cluster."""
    return PitrDrillRequest(
        backup_id=backup_id,
        server_id="pg-main",
        label=label,
        production_dsn=env.dsn(),
        production_datadir=str(env.cluster.datadir),
        pgbr=env.pgbr,
        scratch_root=env.root / "scratch",
        evidence_root=evidence_root,
        databases=databases,
        os_user=env.cluster.os_user,
    )


def archive_conf(root: Path, stanza: str) -> str:
    cfg = root / "conf" / "pgbackrest.conf"
    return (
        f"wal_level = replica\narchive_mode = on\narchive_timeout = 60\n"
        f"archive_command = 'pgbackrest --config={cfg} --stanza={stanza} archive-push %p'\n"
    )


def make_env(name: str, repo_tmpfs: str | None = None) -> PitrEnv:
    """``repo_tmpfs``: mount a tmpfs of that size (e.g. ``"2m"``) as the repository first."""
    root = TEST_HOME / name
    stanza = f"t{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True, exist_ok=True)
    if repo_tmpfs:
        mount_tmpfs(root / "repo", repo_tmpfs)
    cluster = PgCluster(
        root / "pg", free_port(), socket=True, extra_conf=archive_conf(root, stanza)
    )
    server = pitr_server(root, cluster, stanza)
    if repo_tmpfs:  # the mount point belongs to root: hand it to the OS user pgBackRest runs as
        pw = pwd.getpwnam(cluster.os_user)
        os.chown(root / "repo", pw.pw_uid, pw.pw_gid)
    cfg = pitr_config.render(server, cluster.user)
    pitr_config.write_local(cfg, cluster.os_user)
    pitr_config.ensure_repo_dir(server)
    cluster.start()
    pgbr = PgBackRest(cfg, os_user=cluster.os_user, password=cluster.password)
    pgbr.checked("stanza-create", timeout=120)
    return PitrEnv(cluster, server, pgbr, root)


def mount_tmpfs(path: Path, size: str) -> None:
    """A small tmpfs at ``path`` (a repository disk that fills up); skips where mount is refused."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("挂载 tmpfs 需要 root / mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"不允许挂载 tmpfs / mount refused here: {proc.stderr.strip()[:200]}")


_SHARED: dict[str, PitrEnv] = {}


@pytest.fixture(scope="session")
def pitr_env() -> Iterator[PitrEnv]:
    """One archiving cluster for the PITR tests (they add data, never break it). Also registered by
    tests/dags/conftest.py: the second registration reuses the first cluster."""
    if "pitr" in _SHARED:
        yield _SHARED["pitr"]
        return
    env = _SHARED["pitr"] = make_env("pitr")
    yield env
    env.cluster.destroy()


@pytest.fixture
def own_pitr_env() -> Iterator[PitrEnv]:
    """A cluster + repository of the test's own (for faults that break them)."""
    env = make_env(f"pitr-{uuid.uuid4().hex[:6]}")
    yield env
    env.cluster.destroy()
    import shutil

    shutil.rmtree(env.root, ignore_errors=True)


@pytest.fixture
def full_disk_pitr_env() -> Iterator[PitrEnv]:
    """A cluster whose repository is a 2 MiB tmpfs: room for the stanza, not for a backup."""
    import shutil

    root = TEST_HOME / f"pitr-full-{uuid.uuid4().hex[:6]}"
    env = None
    try:
        env = make_env(root.name, repo_tmpfs="2m")
        yield env
    finally:
        if env is not None:
            env.cluster.destroy()
        subprocess.run(["umount", str(root / "repo")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
