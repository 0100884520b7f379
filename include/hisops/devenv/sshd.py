"""A throwaway OpenSSH server on loopback, for the test suite and benchmarks.

Host key and client key are generated fresh in ``root``; the server accepts only that
client key, for the current OS user, on 127.0.0.1.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hisops.devenv.pgcluster import port_in_use


class SshdError(RuntimeError):
    """sshd could not be started."""


def find_sshd() -> str:
    for cand in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if cand and Path(cand).exists():
            return cand
    raise SshdError("sshd not found: install openssh-server (apt-get install openssh-server)")


@dataclass
class LoopbackSshd:
    root: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def user(self) -> str:
        return getpass.getuser()

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def pidfile(self) -> Path:
        return self.root / "sshd.pid"

    def _keygen(self, path: Path) -> None:
        if not path.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
            )

    def start(self, timeout: float = 15) -> None:
        sshd = find_sshd()
        if self.running():
            return
        if port_in_use(self.port, self.host):
            raise SshdError(f"port {self.port} is taken; set HISOPS_TEST_SSH_PORT")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        host_key = self.root / "host_ed25519"
        self._keygen(host_key)
        self._keygen(self.client_key)
        auth_keys = self.root / "authorized_keys"
        shutil.copy(self.client_key.with_suffix(".pub"), auth_keys)
        auth_keys.chmod(0o600)
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation dir, needed when root
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {self.host}\nHostKey {host_key}\n"
            f"PidFile {self.pidfile}\nAuthorizedKeysFile {auth_keys}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nMaxStartups 200:30:400\n"
            "MaxSessions 50\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        subprocess.run([sshd, "-f", str(config), "-E", str(self.root / "sshd.log")], check=True)
        deadline = time.monotonic() + timeout
        while not port_in_use(self.port, self.host):
            if time.monotonic() > deadline:
                raise SshdError(f"sshd did not listen on {self.port}: see {self.root / 'sshd.log'}")
            time.sleep(0.1)

    def running(self) -> bool:
        if not self.pidfile.exists():
            return False
        try:
            os.kill(int(self.pidfile.read_text().strip()), 0)
            return True
        except (ProcessLookupError, ValueError):
            return False

    def stop(self) -> None:
        if self.running():
            os.kill(int(self.pidfile.read_text().strip()), signal.SIGTERM)
        self.pidfile.unlink(missing_ok=True)
