"""One way to run a command on a host: locally or over SSH (paramiko).

Every host check, log read and file backup goes through a ``CommandRunner``.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
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


class CommandStream(Protocol):
    """A running command whose stdout is read as it comes (no full output held in memory)."""

    def chunks(self) -> Iterator[bytes]: ...

    def finish(self) -> CommandResult:
        """Wait for the exit status; ``stdout`` is empty (it was streamed), ``stderr`` capped."""
        ...

    def close(self) -> None: ...


class CommandRunner(Protocol):
    target: str

    def run(self, command: str, timeout: float = 30) -> CommandResult: ...

    def open_stream(self, command: str, timeout: float = 3600) -> CommandStream: ...

    def close(self) -> None: ...


STDERR_CAP = 64 * 1024  # a stream's stderr is kept up to this size (find may warn per directory)
STREAM_CHUNK = 64 * 1024


class _LocalStream:
    def __init__(self, command: str, timeout: float) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the stream
        self._start = time.monotonic()
        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        self._timer = threading.Timer(timeout, self._proc.kill)
        self._timer.daemon = True
        self._timer.start()
        self._timeout = timeout

    def chunks(self) -> Iterator[bytes]:
        assert self._proc.stdout is not None
        while chunk := self._proc.stdout.read1(STREAM_CHUNK):
            yield chunk

    def finish(self) -> CommandResult:
        rc = self._proc.wait()
        timed_out = not self._timer.is_alive() and rc < 0
        self._timer.cancel()
        self._err.seek(0)
        err = self._err.read(STDERR_CAP).decode("utf-8", "replace")
        self.close()
        if timed_out:
            return CommandResult(
                124, "", f"timed out after {self._timeout}s", time.monotonic() - self._start
            )
        return CommandResult(rc, "", err, time.monotonic() - self._start)

    def close(self) -> None:
        self._timer.cancel()
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._err.close()


class LocalRunner:
    """Runs commands on this machine with /bin/sh."""

    def __init__(self, target: str = "local") -> None:
        self.target = target

    def run(self, command: str, timeout: float = 30) -> CommandResult:
        start = time.monotonic()
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"timed out after {timeout}s", time.monotonic() - start)
        return CommandResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def open_stream(self, command: str, timeout: float = 3600) -> CommandStream:
        return _LocalStream(command, timeout)

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
            client.connect(
                p.host,
                port=p.port,
                username=p.username,
                key_filename=p.key_file,
                password=p.password,
                timeout=p.connect_timeout,
                banner_timeout=p.connect_timeout,
                auth_timeout=p.connect_timeout,
                allow_agent=False,
                look_for_keys=p.key_file is None and p.password is None,
            )
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise TargetUnreachable(
                self.target, f"ssh {p.host}:{p.port}: {exc or type(exc).__name__}"
            ) from exc
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

    def open_stream(self, command: str, timeout: float = 3600) -> CommandStream:
        if self._client is None:
            self._client = self._connect()
        try:
            channel = self._client.get_transport().open_session(timeout=self.params.connect_timeout)
            channel.exec_command(command)
            channel.shutdown_write()
        except Exception as exc:  # paramiko raises a zoo of types once connected
            raise TargetUnreachable(self.target, f"ssh session failed: {exc}") from exc
        return _SshStream(self.target, channel, timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _SshStream:
    """stdout read in chunks; stderr drained aside so a chatty command never stalls the window."""

    POLL = 1.0

    def __init__(self, target: str, channel, timeout: float) -> None:
        self._target, self._channel = target, channel
        self._start = time.monotonic()
        self._deadline = self._start + timeout
        self._timeout = timeout
        self._err = bytearray()
        self._timed_out = False
        channel.settimeout(self.POLL)

    def _drain_stderr(self) -> None:
        while self._channel.recv_stderr_ready():
            data = self._channel.recv_stderr(STREAM_CHUNK)
            if len(self._err) < STDERR_CAP:
                self._err += data[: STDERR_CAP - len(self._err)]

    def chunks(self) -> Iterator[bytes]:
        while True:
            self._drain_stderr()
            try:
                data = self._channel.recv(STREAM_CHUNK)
            except TimeoutError:
                if time.monotonic() > self._deadline:
                    self._timed_out = True
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - connection lost mid-stream
                raise TargetUnreachable(self._target, f"ssh stream failed: {exc}") from exc
            if not data:
                return
            yield data

    def finish(self) -> CommandResult:
        seconds = time.monotonic() - self._start
        if self._timed_out:
            self.close()
            return CommandResult(124, "", f"timed out after {self._timeout}s", seconds)
        self._channel.settimeout(None)
        rc = self._channel.recv_exit_status()
        self._drain_stderr()
        self.close()
        return CommandResult(rc, "", self._err.decode("utf-8", "replace"), seconds)

    def close(self) -> None:
        self._channel.close()
