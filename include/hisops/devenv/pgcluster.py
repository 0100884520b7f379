"""A private PostgreSQL cluster for the demo and the test suite.

Built with the machine's own ``initdb``/``pg_ctl`` in a folder we own, on a port of
our own, listening on 127.0.0.1 only; it never touches a server that is already
running. PostgreSQL refuses to run as root, so when we are root the server runs as
the ``postgres`` OS user (the Debian packages create it).

Clone anywhere: when we are root and ``postgres`` cannot enter the checkout (a clone in
root's 0700 home), the server's files go to ``/var/tmp/hisops-<uid>-<hash of the folder>``
(0700, owned by ``postgres``) and ``<root>/data`` is a symlink to them, so the folder in
the checkout still shows where the data is and ``destroy()`` removes both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.targets.postgres import (
    PgToolError,
    as_os_user,
    connect,
    pg_ctl_stop_argv,
    server_bindir,
)

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection
    from psycopg2.sql import Composable

SUPERUSER = "hisops"
SERVER_OS_USER = "postgres"  # who runs the server when we are root
APP = "hisops-devenv"  # application_name of the cluster helper's own sessions
OUTSIDE_BASE = Path(os.environ.get("HISOPS_PG_OUTSIDE_DIR", "/var/tmp"))
log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The private cluster could not be created or started."""


def find_pg_bindir() -> Path:
    """Newest PostgreSQL server binaries on this machine (``targets.postgres.server_bindir``)."""
    try:
        return server_bindir()
    except PgToolError as exc:
        raise ClusterError(str(exc)) from exc


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class PgCluster:
    """A PostgreSQL cluster living in ``root`` (data in root/data, secret in root/superuser.pw)."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    #: a unix socket directory (root/sock, 0700) — pgBackRest reaches PostgreSQL only through one
    socket: bool = False
    #: extra postgresql.conf lines written at initdb (e.g. WAL archiving to pgBackRest)
    extra_conf: str = ""

    @property
    def socket_dir(self) -> Path:
        return self.server_dir / "sock"  # where the server's user can reach it

    @property
    def os_user(self) -> str:
        """The OS user the server runs as (``postgres`` when we are root)."""
        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def server_dir(self) -> Path:
        """Where the server's own files live: ``root`` itself, or the target of ``root/data``."""
        link = self.root / "data"
        if link.is_symlink():
            return Path(os.readlink(link)).parent
        return self.root

    @property
    def datadir(self) -> Path:
        return self.server_dir / "data"

    @property
    def password_file(self) -> Path:
        return self.root / "superuser.pw"

    @property
    def logfile(self) -> Path:
        return self.server_dir / "server.log"

    def outside_dir(self) -> Path:
        """The server folder used when the server's OS user cannot reach ``root``."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return OUTSIDE_BASE / f"hisops-{os.getuid()}-{digest}"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq key/value DSN (psycopg2, pg_dump --dbname)."""
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password} "
            f"dbname={dbname}"
        )

    def sqlalchemy_url(self, dbname: str) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    # --- running binaries as the right OS user -------------------------------------------------
    def _as_owner(self, argv: list[str]) -> list[str]:
        return as_os_user(argv, SERVER_OS_USER)

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam(SERVER_OS_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _server_can_reach(self, path: Path) -> bool:
        if os.geteuid() != 0:
            return True
        probe = subprocess.run(
            self._as_owner(["test", "-w", str(path), "-a", "-x", str(path)]), capture_output=True
        )
        return probe.returncode == 0

    def server_can_enter(self, path: Path) -> bool:
        """Whether the server's OS user can traverse ``path`` (always, when we are not root)."""
        if os.geteuid() != 0:
            return True
        probe = subprocess.run(self._as_owner(["test", "-x", str(path)]), capture_output=True)
        return probe.returncode == 0

    def _prepare_server_dir(self) -> None:
        """Own ``root`` for the server's user; if it still cannot get in, use ``outside_dir()``."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        if (self.root / "data").is_symlink() or self._server_can_reach(self.root):
            return
        outside = self.outside_dir()
        if outside.is_symlink() or (
            outside.exists() and outside.stat().st_uid != pwd.getpwnam(SERVER_OS_USER).pw_uid
        ):
            raise ClusterError(f"{outside} exists and is not ours; remove it")
        outside.mkdir(mode=0o700, exist_ok=True)
        outside.chmod(0o700)
        self._chown(outside)
        self._drop_orphaned(outside)
        os.symlink(outside / "data", self.root / "data")

    def _drop_orphaned(self, outside: Path) -> None:
        """Empty the folder an earlier checkout at this same path left behind (deleted, cloned
        again): nothing links to its cluster any more, its superuser password went with the
        checkout, and what lies beside it (the demo's pgBackRest repository) belongs to it."""
        datadir = outside / "data"
        if not datadir.exists():
            return
        log.warning("removing the orphaned private cluster %s of an earlier checkout", outside)
        if (datadir / "postmaster.pid").exists():
            stop = pg_ctl_stop_argv(datadir, mode="immediate", bindir=find_pg_bindir())
            subprocess.run(self._as_owner(stop), capture_output=True)
        for child in outside.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._as_owner(argv), capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(
                f"{Path(argv[0]).name} failed: {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    # --- lifecycle ------------------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialized():
            return False
        bindir = find_pg_bindir()
        proc = subprocess.run(
            self._as_owner([str(bindir / "pg_ctl"), "status", "-D", str(self.datadir)]),
            capture_output=True,
            text=True,
        )
        return proc.returncode == 0

    def init(self) -> None:
        """initdb, scram-sha-256 on TCP; a random superuser password kept 0600 beside the data."""
        if self.initialized():
            return
        bindir = find_pg_bindir()
        self._prepare_server_dir()
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
            self.password_file.chmod(0o600)
        pwfile = self.server_dir / ".initdb.pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if self.socket:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            self._chown(self.socket_dir)
        sockets = str(self.socket_dir) if self.socket else ""
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# hisops private cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{sockets}'\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "fsync = on\n"
                # pgaudit: statement audit (等保 安全审计); security_audit checks it is configured
                "shared_preload_libraries = 'pg_stat_statements,pgaudit'\n"
                "max_prepared_transactions = 0\n"
                + (self.extra_conf.rstrip("\n") + "\n" if self.extra_conf else "")
            )

    def start(self, timeout: int = 60) -> None:
        self.init()
        if self.running():
            return
        if port_in_use(self.port, self.host):
            raise ClusterError(
                f"port {self.port} is taken by another server; set another port "
                "(HISOPS_DEMO_PG_PORT / HISOPS_TEST_PG_PORT)"
            )
        bindir = find_pg_bindir()
        self.logfile.touch()
        self._chown(self.logfile)
        self._run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                str(timeout),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
            ]
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: int = 60) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                connect(self.dsn(), application_name=APP, connect_timeout=3).close()
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cluster on port {self.port} not ready: {exc}") from exc
                time.sleep(0.3)

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        self._run(pg_ctl_stop_argv(self.datadir, mode=mode, bindir=find_pg_bindir()))

    def destroy(self) -> None:
        self.stop("immediate")
        if self.server_dir != self.root:
            shutil.rmtree(self.server_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- databases ------------------------------------------------------------------------------
    def connect(self, dbname: str = "postgres", *, autocommit: bool = True) -> PgConnection:
        """A superuser connection (autocommit unless asked otherwise); the caller closes it."""
        return connect(self.dsn(dbname), application_name=APP, autocommit=autocommit)

    def execute(self, sql: str | Composable, dbname: str = "postgres") -> None:
        """Run one statement (str or psycopg2.sql.Composable) in autocommit mode."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def database_exists(self, name: str) -> bool:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                return cur.fetchone() is not None
        finally:
            conn.close()

    def create_database(self, name: str, drop_first: bool = False) -> bool:
        """Create ``name`` unless it exists; returns True when it was created."""
        from psycopg2 import sql

        ident = sql.Identifier(name)
        if drop_first:
            self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        if self.database_exists(name):
            return False
        self.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        return True
