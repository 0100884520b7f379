"""One way to run a command on a host: locally or over SSH (paramiko).

Every host check, log read and file backup goes through a ``CommandRunner``.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Protocol

from hisops.targets.errors import TargetUnreachable


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


class CommandRunner(Protocol):
    target: str

    def run(self, command: str, timeout: float = 30) -> CommandResult: ...

    def close(self) -> None: ...


class LocalRunner:
    """Runs commands on this machine with /bin/sh."""

    def __init__(self, target: str = "local") -> None:
        self.target = target

    def run(self, command: str, timeout: float = 30) -> CommandResult:
        start = time.monotonic()
        try:
            proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"timed out after {timeout}s", time.monotonic() - start)
        return CommandResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class SshParams:
    host: str
    port: int = 22
    username: str | None = None
    key_file: str | None = None
    password: str | None = None  # from the Airflow connection only, never the inventory
    connect_timeout: float = 10


class SshRunner:
    """Runs commands on a remote host over one SSH connection (opened lazily)."""

    def __init__(self, target: str, params: SshParams) -> None:
        self.target = target
        self.params = params
        self._client = None

    def _connect(self):
        import paramiko

        client = paramiko.SSHClient()
        # Host keys: ops register hosts by connection id; we accept first-seen keys like the
        # Airflow SSH provider's default (no_host_key_check) but never send passwords unasked.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        p = self.params
        try:
            client.connect(p.host, port=p.port, username=p.username, key_filename=p.key_file,
                           password=p.password, timeout=p.connect_timeout,
                           banner_timeout=p.connect_timeout, auth_timeout=p.connect_timeout,
                           allow_agent=False, look_for_keys=p.key_file is None and p.password is None)
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise TargetUnreachable(self.target, f"ssh {p.host}:{p.port}: {exc or type(exc).__name__}") from exc
        return client

    def run(self, command: str, timeout: float = 30) -> CommandResult:
        if self._client is None:
            self._client = self._connect()
        start = time.monotonic()
        try:
            stdin, out, err = self._client.exec_command(command, timeout=timeout)
            try:
                stdin.close()
                stdout = out.read().decode("utf-8", "replace")
                stderr = err.read().decode("utf-8", "replace")
                rc = out.channel.recv_exit_status()
            finally:
                # closing the channel's file objects here avoids paramiko's noisy __del__ at exit
                for f in (stdin, out, err):
                    f.close()
                out.channel.close()
        except TimeoutError:
            return CommandResult(124, "", f"timed out after {timeout}s", time.monotonic() - start)
        except Exception as exc:  # paramiko raises a zoo of types once connected
            raise TargetUnreachable(self.target, f"ssh session failed: {exc}") from exc
        return CommandResult(rc, stdout, stderr, time.monotonic() - start)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
